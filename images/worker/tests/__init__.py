# torch is imported once, up front: tests that patch sys.modules (mock.patch.dict) would otherwise drop a
# torch first imported inside the patch, and Debian's torch 1.13 cannot be imported a second time
# ("function '_has_torch_function' already has a docstring"), so a backend test module run on its own failed.
try:
    import torch  # noqa: F401
except ImportError:
    pass
