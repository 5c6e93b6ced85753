"""Using a finished workdir: generate.py samples text from a language-model run; predict.py
predicts the class of image, array and text files from the checkpoint or its export
(research/export writes it); server.py answers the same over HTTP, batching requests that
arrive together; quantized.py evaluates a run's int8 model beside the float one."""
