"""Prefect flows: thin compositions of the units of work in ``tasks``."""
import sys

# jsonschema's optional check of the "iri" format (rfc3987-syntax, required by jupyter-events)
# builds ~35 Earley parsers when jsonschema is imported: 1.5-2 s of every process that imports
# Prefect, a flow run's process included. No schema here uses that format; without the module
# jsonschema skips the check, as it does in its default install.
sys.modules.setdefault("rfc3987_syntax", None)
