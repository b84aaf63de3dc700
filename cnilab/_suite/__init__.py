"""The stages and the plugin, as installed with a (non-editable) cnilab: ``tests/`` and ``plugin/`` of the
checkout land below this package, so `cnilab run`, demos and the workbook find them anywhere."""
