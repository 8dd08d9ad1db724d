"""GridDesk's cases as the systems around it see them: Open311 GeoReport v2, the 12345
hotline, outbound webhooks. Mapping rules only; HTTP glue lives in griddesk/http/."""
