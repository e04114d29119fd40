"""The 128 General MIDI program names (GM 1 sound set), index = program number 0..127.

>>> len(GM_PROGRAMS), GM_PROGRAMS[40]
(128, 'violin')
"""

GM_PROGRAMS = (
    # 0-7 piano
    "acoustic grand piano", "bright acoustic piano", "electric grand piano", "honky-tonk piano",
    "electric piano 1", "electric piano 2", "harpsichord", "clavinet",
    # 8-15 chromatic percussion
    "celesta", "glockenspiel", "music box", "vibraphone",
    "marimba", "xylophone", "tubular bells", "dulcimer",
    # 16-23 organ
    "drawbar organ", "percussive organ", "rock organ", "church organ",
    "reed organ", "accordion", "harmonica", "tango accordion",
    # 24-31 guitar
    "acoustic guitar nylon", "acoustic guitar steel", "electric guitar jazz",
    "electric guitar clean", "electric guitar muted", "overdriven guitar",
    "distortion guitar", "guitar harmonics",
    # 32-39 bass
    "acoustic bass", "electric bass finger", "electric bass pick", "fretless bass",
    "slap bass 1", "slap bass 2", "synth bass 1", "synth bass 2",
    # 40-47 strings
    "violin", "viola", "cello", "contrabass",
    "tremolo strings", "pizzicato strings", "orchestral harp", "timpani",
    # 48-55 ensemble
    "string ensemble 1", "string ensemble 2", "synth strings 1", "synth strings 2",
    "choir aahs", "voice oohs", "synth voice", "orchestra hit",
    # 56-63 brass
    "trumpet", "trombone", "tuba", "muted trumpet",
    "french horn", "brass section", "synth brass 1", "synth brass 2",
    # 64-71 reed
    "soprano sax", "alto sax", "tenor sax", "baritone sax",
    "oboe", "english horn", "bassoon", "clarinet",
    # 72-79 pipe
    "piccolo", "flute", "recorder", "pan flute",
    "blown bottle", "shakuhachi", "whistle", "ocarina",
    # 80-87 synth lead
    "lead square", "lead sawtooth", "lead calliope", "lead chiff",
    "lead charang", "lead voice", "lead fifths", "lead bass and lead",
    # 88-95 synth pad
    "pad new age", "pad warm", "pad polysynth", "pad choir",
    "pad bowed", "pad metallic", "pad halo", "pad sweep",
    # 96-103 synth effects
    "fx rain", "fx soundtrack", "fx crystal", "fx atmosphere",
    "fx brightness", "fx goblins", "fx echoes", "fx sci-fi",
    # 104-111 ethnic
    "sitar", "banjo", "shamisen", "koto",
    "kalimba", "bagpipe", "fiddle", "shanai",
    # 112-119 percussive
    "tinkle bell", "agogo", "steel drums", "woodblock",
    "taiko drum", "melodic tom", "synth drum", "reverse cymbal",
    # 120-127 sound effects
    "guitar fret noise", "breath noise", "seashore", "bird tweet",
    "telephone ring", "helicopter", "applause", "gunshot",
)


def class_name(program: int) -> str:
    """Folder name of a program's class: zero-padded number, then the name.

    >>> class_name(0), class_name(73)
    ('000_acoustic_grand_piano', '073_flute')
    """
    return f"{program:03d}_" + GM_PROGRAMS[program].replace(" ", "_").replace("-", "_")
