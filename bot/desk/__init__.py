"""The command room's desk: assessment figures (考核), periods and scopes, charts, the work
queue, search, corrections, export, periodic reports and the map. Definitions: docs/kpi.md."""
