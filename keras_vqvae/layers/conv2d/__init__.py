"""2-D convolutional blocks: the image encoder, decoder and PixelCNN prior."""
