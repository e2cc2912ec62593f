"""Every outbound HTTP call passes through this package (see ``client.Downstream``)."""
