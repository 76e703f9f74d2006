"""datagc: keep a service's data directory from filling its disk, never touching its product."""

__version__ = "0.1.0"
