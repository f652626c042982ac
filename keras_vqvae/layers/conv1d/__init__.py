"""1-D convolutional blocks: the audio encoder and the WaveNet decoder."""
