// Dream: audiodream's live dreaming as a UGen, and DreamControl to talk to it.
//
// Dream.ar streams its input to an audiodream server (StreamDream) from the
// server plugin (Dream.so); numeric parameters are UGen inputs, sent to the
// server whenever they change; text parameters (model, layers, objective...)
// are unit commands, sent by a DreamControl. Negative numbers mean "the
// server's default".

Dream : MultiOutUGen {
	// The parameters that are UGen inputs, in the plugin's order.
	classvar <numbers = #[\iterations, \step, \mix, \jitter, \lowpass, \smoothing, \seed];
	const <stateNames = #[\disconnected, \connecting, \connected];

	*ar { |in, iterations = -1, step = -1, mix = -1, jitter = -1, lowpass = -1,
		smoothing = -1, seed = -1, dry = 1, block = 2048, preroll = 2048, id = 0, delay = 0|
		in = in.asArray;
		if(in.size < 1 or: { in.size > 8 }) {
			Error("Dream: 1 to 8 input channels, not %".format(in.size)).throw
		};
		^this.multiNewList([\audio, iterations, step, mix, jitter, lowpass, smoothing, seed,
			dry, block, preroll, delay, id] ++ in)
	}

	init { |... theInputs|
		inputs = theInputs;
		^this.initOutputs(inputs.size - 12, rate)
	}

	checkInputs {
		inputs.drop(12).do { |input, i|
			if(input.rate != \audio) {
				^"channel % is not audio rate: %".format(i, input)
			}
		};
		^this.checkValidInputs
	}

	// The server Dream units made from now on stream to ("host:port").
	*serverAddress_ { |address, server|
		(server ? Server.default).sendMsg(\cmd, \dreamServer, address.asString)
	}
}

// Talks to one Dream unit of a running synth: sets its text parameters, asks
// the audiodream server for its models and layers, and keeps what the unit
// reports (state, latency in samples, round trip, underruns...).
DreamControl {
	var <node, <id, <index, <server;
	var <state, <latency, <rtt, <rttMax, <underruns, <late, <iterationsRun, <controls,
	<blocks, <dropped, <overruns, <concealed;
	var <>onReport, <>onInfo;
	var <models, <defaultModel, <layers, <defaultLayer;
	var reportFunc, infoFunc, modelsWaiting, layersWaiting, pendingModels, pendingLayers;

	// node: a Synth (or node ID); id: the Dream's id input, to tell several
	// apart; index: its UGen index in the SynthDef (learnt from its first
	// report when nil).
	*new { |node, id = 0, index, server|
		^super.new.init(node, id, index, server)
	}

	init { |argNode, argId, argIndex, argServer|
		node = argNode;
		id = argId;
		index = argIndex;
		server = argServer ?? { if(node.respondsTo(\server)) { node.server } { Server.default } };
		reportFunc = OSCFunc({ |msg| this.prReport(msg) }, '/dream', server.addr,
			argTemplate: [this.nodeID, id]);
		infoFunc = OSCFunc({ |msg| this.prInfo(msg) }, '/dream_info', server.addr,
			argTemplate: [this.nodeID, id]);
	}

	nodeID { ^node.isNumber.if({ node }, { node.nodeID }) }

	free {
		reportFunc.free;
		infoFunc.free;
	}

	// A unit command: name and its arguments.
	cmd { |name ... args|
		if(index.isNil) {
			"DreamControl: the unit's index is not known yet (no report so far)".warn;
			^this
		};
		server.sendMsg(\u_cmd, this.nodeID, index, name, *args)
	}

	serverAddress_ { |address| this.cmd(\server, address.asString) }
	connect { |address| if(address.isNil) { this.cmd(\connect) } { this.cmd(\connect, address.asString) } }
	disconnect { this.cmd(\disconnect) }
	model_ { |name| this.cmd(\model, name.asString) }
	// "conv3", "conv3 0 5 9", "conv2@0.5 conv3"; nil: the model's default.
	layers_ { |spec|
		var text = case
			{ spec.isNil } { "" }
			{ spec.isString or: { spec.isKindOf(Symbol) } } { spec.asString }
			{ spec.collect(_.asString).join(" ") };
		this.cmd(\layers, text)
	}
	objective_ { |name| this.cmd(\objective, name.asString) }
	update_ { |name| this.cmd(\update, name.asString) }
	mode_ { |name| this.cmd(\mode, name.asString) }
	// Morph mode ("morph", an autoencoder model, a target): 0 = the input .. 1 = the target.
	morph_ { |amount| this.cmd(\morph, amount.asFloat) }
	window_ { |frames| this.cmd(\window, frames.asInteger) }
	target_ { |buffer| this.cmd(\target, buffer.isNumber.if({ buffer }, { buffer.bufnum })) }
	bypass_ { |on| this.cmd(\bypass, on.binaryValue) }
	reset { this.cmd(\reset) }

	// Asks for the server's models; action gets an Array of Events
	// (name, rate, window, defaultLayer, trained) and the default model's name.
	queryModels { |action|
		pendingModels = [];
		modelsWaiting = action;
		this.cmd(\models)
	}

	// Asks for a model's layers (nil: the one in use); action gets an Array of
	// Events (name, channels, frameRate, type) and the default layer's name.
	queryLayers { |model, action|
		pendingLayers = [];
		layersWaiting = action;
		this.cmd('layers?', (model ? "").asString)
	}

	stateName { ^state !? { Dream.stateNames[state] } }

	prReport { |msg|
		var v = msg.drop(3);
		index = index ? v[0].asInteger;
		state = v[1].asInteger;
		latency = v[2].asInteger;
		rtt = v[3];
		rttMax = v[4];
		underruns = v[5].asInteger;
		late = v[6].asInteger;
		iterationsRun = v[7];
		controls = v[8].asInteger;
		blocks = v[9].asInteger;
		dropped = v[10].asInteger;
		overruns = v[11].asInteger;
		concealed = v[12].asInteger;
		onReport.value(this);
	}

	prInfo { |msg|
		var line = String.newFrom(msg.drop(3).collect { |c| c.asInteger.asAscii });
		var words = line.split($ );
		switch(words[0],
			"model", {
				pendingModels = pendingModels.add((name: words[1], rate: words[2].asInteger,
					window: words[3].asInteger, defaultLayer: words[4], trained: words[5] == "1"))
			},
			"default_model", {
				models = pendingModels;
				defaultModel = words[1];
				modelsWaiting.value(models, defaultModel);
				modelsWaiting = nil;
			},
			"layer", {
				pendingLayers = pendingLayers.add((name: words[1], channels: words[2].asInteger,
					frameRate: words[3].asFloat, type: words[4]))
			},
			"default_layer", {
				layers = pendingLayers;
				defaultLayer = words[1];
				layersWaiting.value(layers, defaultLayer);
				layersWaiting = nil;
			}
		);
		onInfo.value(line, this);
	}
}
