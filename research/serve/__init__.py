"""Using a finished workdir: generate.py samples text from a language-model run; export.py
writes a classifier run as a self-checked `jax.export` module with its signature; predict.py
predicts the class of image, array and text files from the checkpoint or the export."""
