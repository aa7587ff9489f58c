"""Point distribution model of 68-point faces (numpy/scipy/opencv only; never imports gannotate)."""
