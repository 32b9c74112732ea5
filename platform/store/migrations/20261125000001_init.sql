-- Workflows, their stage tasks, the audit trail, artifacts and the dispatch outbox.

CREATE TABLE workflows (
    id             uuid PRIMARY KEY,            -- UUIDv7: time-ordered, the keyset for listing
    name           text        NOT NULL,
    type           text        NOT NULL,
    description    text        NOT NULL DEFAULT '',
    template       text        NOT NULL,
    params         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state          text        NOT NULL,
    current_stage  text,
    context        jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- outputs of finished stages
    failure_reason text,
    correlation_id text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflows_state_id ON workflows (state, id DESC);
CREATE INDEX workflows_type_id ON workflows (type, id DESC);

CREATE TABLE tasks (
    id            uuid PRIMARY KEY,
    workflow_id   uuid        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    stage         text        NOT NULL,
    status        text        NOT NULL,   -- dispatched | succeeded | failed | dead_lettered | cancelled
    attempts      integer     NOT NULL DEFAULT 1,
    result        jsonb,
    error         text,
    agent_id      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz NOT NULL DEFAULT now(),
    picked_up_at  timestamptz,
    completed_at  timestamptz
);
CREATE INDEX tasks_workflow ON tasks (workflow_id, created_at);
CREATE INDEX tasks_open ON tasks (dispatched_at) WHERE status = 'dispatched';

CREATE TABLE events (
    id          bigserial PRIMARY KEY,
    workflow_id uuid        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    kind        text        NOT NULL,     -- transition | task_dispatched | task_redispatched
    from_state  text,
    to_state    text,
    data        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_workflow ON events (workflow_id, id);

CREATE TABLE artifacts (
    id           uuid PRIMARY KEY,
    workflow_id  uuid        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    task_id      uuid        NOT NULL,
    name         text        NOT NULL,
    content_type text        NOT NULL,
    size_bytes   bigint      NOT NULL,
    sha256       text        NOT NULL,
    data         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, name)
);

-- Envelopes committed with their task and published to Redis afterwards, so a crash between
-- the commit and XADD loses nothing.
CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    stage      text        NOT NULL,
    envelope   jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
