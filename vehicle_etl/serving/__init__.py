"""What readers use: VIN decoding, the operator's page (catalog_page), the HTTP API (vpic_api)."""
