"""Using a finished workdir: generate.py samples text from a language-model run; export.py
writes a classifier run as self-checked StableHLO and ONNX files with their signature;
predict.py predicts the class of image, array and text files from the checkpoint or the
export; server.py answers the same over HTTP, batching requests that arrive together."""
