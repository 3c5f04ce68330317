"""Registry backends behind one contract (:class:`~.base.RegistryBackend`).

Import the concrete modules directly (``querybus.registry.backends.etcd``);
they are not imported here so that choosing one backend never loads the
libraries of another.
"""

from querybus.registry.backends.base import RegistryBackend

__all__ = ["RegistryBackend"]
