-- Keys an event pipeline's dedupe stage has seen: a claim while the event is in flight
-- (done = 0), then the key remembered for the de-duplication window (done = 1).
CREATE TABLE kernelize_dedupe (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    owner TEXT NOT NULL,
    done BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX kernelize_dedupe_expiry ON kernelize_dedupe (scope, expires_at);
