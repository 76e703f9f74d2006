"""The one place configuration is defined, read, validated and explained.

Every key of SPEC §3 is declared once in ``KEYS`` with its parser, default and
environment names. ``load_config`` resolves each key by precedence
flag > environment > config file (TOML) > default, validates the result before
any file is touched, and remembers where every value came from so that
``datagc config`` can say it.
"""
