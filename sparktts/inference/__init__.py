"""Text in, audio out: the ``SparkTTS`` facade (``tts``), its results (``synthesis``), argument checks
(``inputs``), voices (``voices``), the row scheduler shared by one-shot calls and streams (``scheduler``)
and streaming (``stream``). Imports run tts -> stream -> scheduler -> synthesis."""
