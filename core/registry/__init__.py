"""Model versions beyond the run that made them: how a version is named on the command line
(``NAME``, ``NAME:3``, ``NAME@alias``, in ``refs``) and what lineage it records (``lineage``). Stores
themselves are plugins (``ftp_model_registry``; the built-in is ``ftp.plugins.registry_sqlite``)."""
