"""Named YAML configs per system (`<system>/<name>.yaml`), shipped with the package."""
