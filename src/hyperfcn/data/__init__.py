"""The data's path from a folder of labelled images to the arrays a trial trains on.

Imports neither Keras nor Ray (a fast test checks), so it can be read, tested and run alone:

- :mod:`.folder` finds the labelled images and decodes each one once;
- :mod:`.sizing` reads the image sizes the data supports;
- :mod:`.buckets` groups images of one shape and plans the batches drawn from them;
- :mod:`.cache_plan`, :mod:`.cache` and :mod:`.cache_admin` plan, write, share and clear the
  decoded cache on disk;
- :mod:`.footprint` checks the disk and memory the cache will take before it is written;
- :mod:`.prepare` runs the path for one experiment and hands back :class:`.arrays.TrialData`;
- :mod:`.epoch` sizes an epoch and the validation sample scored each epoch.
"""
