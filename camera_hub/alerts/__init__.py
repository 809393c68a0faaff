"""Alerts: the record (model), Redis storage (store), the publisher with its spool, and the
lifecycle (``AlertStore.transition``)."""
