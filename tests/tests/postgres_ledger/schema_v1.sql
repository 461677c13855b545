-- The PostgreSQL ledger's tables as schema version 1 wrote them, with its
-- version row: a database from before the audit log, for the migration test.
CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS chips (
    chip_id       BYTEA PRIMARY KEY CHECK (length(chip_id) = 32),
    model         TEXT NOT NULL,
    identity_cert BYTEA NOT NULL,
    enrolled_at   BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS licenses (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id       BYTEA NOT NULL UNIQUE CHECK (length(token_id) = 16),
    chip_id        BYTEA NOT NULL REFERENCES chips (chip_id),
    tenant         TEXT NOT NULL,
    site_id        TEXT NOT NULL,
    site_latitude  DOUBLE PRECISION NOT NULL,
    site_longitude DOUBLE PRECISION NOT NULL,
    site_radius_km DOUBLE PRECISION NOT NULL,
    issued_at      BIGINT NOT NULL,
    not_before     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'superseded')),
    token          BYTEA NOT NULL,
    renewed_from   BYTEA REFERENCES licenses (token_id),
    lineage_root   BYTEA NOT NULL CHECK (length(lineage_root) = 16),
    entitlements   TEXT[] NOT NULL,
    eccn           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS licenses_by_chip ON licenses (chip_id, issued_at);
CREATE INDEX IF NOT EXISTS licenses_by_tenant ON licenses (tenant, issued_at);
CREATE INDEX IF NOT EXISTS licenses_by_parent ON licenses (renewed_from);
CREATE INDEX IF NOT EXISTS licenses_by_lineage ON licenses (lineage_root, id);
CREATE TABLE IF NOT EXISTS revocations (
    token_id   BYTEA PRIMARY KEY REFERENCES licenses (token_id),
    seq        BIGINT NOT NULL CHECK (seq > 0),
    revoked_at BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_by_seq ON revocations (seq);
CREATE TABLE IF NOT EXISTS host_keys (
    id               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    host_id          BYTEA NOT NULL CHECK (length(host_id) = 32),
    ak_name          BYTEA NOT NULL CHECK (length(ak_name) BETWEEN 34 AND 66),
    ak_public        BYTEA NOT NULL,
    ek_cert_sha256   BYTEA NOT NULL CHECK (length(ek_cert_sha256) = 32),
    tpm_manufacturer TEXT NOT NULL,
    enrolled_at      BIGINT NOT NULL,
    PRIMARY KEY (host_id, ak_name)
);
INSERT INTO schema_version (version) VALUES (1);
