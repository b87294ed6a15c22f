-- The desired schema (schema.dir): what `migrations/` at head must produce.
-- Change it here, then `pgwarden migrate create "what changed" --autogenerate`.

-- The education platform's schema: nine models in eleven tables, their enum
-- types, the trigger that keeps updated_at current and the one that keeps
-- audit_log append-only.
-- Every rule the application relies on is a constraint here, so the database
-- rejects bad rows whatever client writes them. PostgreSQL 13+ (gen_random_uuid
-- is built in since 13).

CREATE TYPE user_role AS ENUM ('student', 'teacher', 'admin', 'parent');
CREATE TYPE difficulty_level AS ENUM ('beginner', 'intermediate', 'advanced');
CREATE TYPE progress_status AS ENUM ('not_started', 'in_progress', 'completed');
CREATE TYPE notification_type AS ENUM ('achievement', 'reminder', 'assessment_result', 'message', 'system');

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- users ---------------------------------------------------------------------
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL
                  CONSTRAINT users_email_format CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$' AND length(email) <= 320),
    display_name  text NOT NULL
                  CONSTRAINT users_display_name_not_blank CHECK (length(btrim(display_name)) BETWEEN 1 AND 200),
    role          user_role NOT NULL DEFAULT 'student',
    password_hash text NOT NULL
                  CONSTRAINT users_password_hash_length CHECK (length(password_hash) >= 20),
    preferences   jsonb NOT NULL DEFAULT '{}'
                  CONSTRAINT users_preferences_object CHECK (jsonb_typeof(preferences) = 'object'),
    is_active     boolean NOT NULL DEFAULT true,
    last_login_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Case-insensitive uniqueness, and the index behind login's lookup by lower(email).
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX users_role_idx ON users (role) WHERE is_active;

-- learning_paths --------------------------------------------------------------
CREATE TABLE learning_paths (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title        text NOT NULL
                 CONSTRAINT learning_paths_title_not_blank CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '',
    difficulty   difficulty_level NOT NULL,
    is_published boolean NOT NULL DEFAULT false,
    metadata     jsonb NOT NULL DEFAULT '{}'
                 CONSTRAINT learning_paths_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    -- A path outlives its author's account: the content stays, authorless.
    author_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX learning_paths_author_id_idx ON learning_paths (author_id);
CREATE INDEX learning_paths_published_idx ON learning_paths (difficulty, created_at DESC) WHERE is_published;

-- modules ---------------------------------------------------------------------
CREATE TABLE modules (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Modules are parts of their path: they go with it.
    path_id           uuid NOT NULL REFERENCES learning_paths (id) ON DELETE CASCADE,
    title             text NOT NULL
                      CONSTRAINT modules_title_not_blank CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    position          integer NOT NULL
                      CONSTRAINT modules_position_non_negative CHECK (position >= 0),
    content           jsonb NOT NULL DEFAULT '{}'
                      CONSTRAINT modules_content_object CHECK (jsonb_typeof(content) = 'object'),
    estimated_minutes integer NOT NULL DEFAULT 0
                      CONSTRAINT modules_estimated_minutes_non_negative CHECK (estimated_minutes >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- Also the index of the foreign key (path_id leads) and of "modules of a path in order".
    CONSTRAINT modules_path_position_key UNIQUE (path_id, position)
);

-- study_sessions --------------------------------------------------------------
CREATE TABLE study_sessions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    module_id        uuid NOT NULL REFERENCES modules (id) ON DELETE CASCADE,
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz,
    duration_seconds integer NOT NULL DEFAULT 0
                     CONSTRAINT study_sessions_duration_non_negative CHECK (duration_seconds >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT study_sessions_ended_after_started CHECK (ended_at IS NULL OR ended_at >= started_at)
);
-- "A user's sessions, latest first" and the user_id foreign key.
CREATE INDEX study_sessions_user_started_idx ON study_sessions (user_id, started_at DESC);
CREATE INDEX study_sessions_module_id_idx ON study_sessions (module_id);

-- assessments and attempts ----------------------------------------------------
CREATE TABLE assessments (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- An assessment belongs to exactly one module or one path, and goes with it.
    module_id     uuid REFERENCES modules (id) ON DELETE CASCADE,
    path_id       uuid REFERENCES learning_paths (id) ON DELETE CASCADE,
    title         text NOT NULL
                  CONSTRAINT assessments_title_not_blank CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    questions     jsonb NOT NULL DEFAULT '[]'
                  CONSTRAINT assessments_questions_array CHECK (jsonb_typeof(questions) = 'array'),
    max_score     integer NOT NULL
                  CONSTRAINT assessments_max_score_positive CHECK (max_score > 0),
    passing_score integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assessments_one_parent CHECK (num_nonnulls(module_id, path_id) = 1),
    CONSTRAINT assessments_passing_score_in_range CHECK (passing_score BETWEEN 0 AND max_score),
    -- Target of assessment_attempts' (assessment_id, max_score) key: lets a
    -- CHECK there keep each score within its assessment's max_score.
    CONSTRAINT assessments_id_max_score_key UNIQUE (id, max_score)
);
CREATE INDEX assessments_module_id_idx ON assessments (module_id) WHERE module_id IS NOT NULL;
CREATE INDEX assessments_path_id_idx ON assessments (path_id) WHERE path_id IS NOT NULL;

CREATE TABLE assessment_attempts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    assessment_id uuid NOT NULL,
    -- A copy of the assessment's max_score, kept equal by the foreign key
    -- (ON UPDATE CASCADE): lowering max_score below a recorded score fails.
    max_score     integer NOT NULL,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    score         integer,
    started_at    timestamptz NOT NULL DEFAULT now(),
    submitted_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assessment_attempts_assessment_fkey FOREIGN KEY (assessment_id, max_score)
        REFERENCES assessments (id, max_score) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT assessment_attempts_score_in_range CHECK (score IS NULL OR score BETWEEN 0 AND max_score),
    CONSTRAINT assessment_attempts_submitted_after_started CHECK (submitted_at IS NULL OR submitted_at >= started_at),
    CONSTRAINT assessment_attempts_submitted_has_score CHECK (submitted_at IS NULL OR score IS NOT NULL)
);
CREATE INDEX assessment_attempts_assessment_idx ON assessment_attempts (assessment_id, max_score);
CREATE INDEX assessment_attempts_user_started_idx ON assessment_attempts (user_id, started_at DESC);

-- achievements ----------------------------------------------------------------
CREATE TABLE achievements (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code        text NOT NULL
                CONSTRAINT achievements_code_format CHECK (code ~ '^[a-z0-9_]{1,64}$'),
    title       text NOT NULL
                CONSTRAINT achievements_title_not_blank CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    criteria    jsonb NOT NULL DEFAULT '{}'
                CONSTRAINT achievements_criteria_object CHECK (jsonb_typeof(criteria) = 'object'),
    points      integer NOT NULL DEFAULT 0
                CONSTRAINT achievements_points_non_negative CHECK (points >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT achievements_code_key UNIQUE (code)
);

CREATE TABLE user_achievements (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- An achievement someone earned is history: it cannot be deleted.
    achievement_id uuid NOT NULL REFERENCES achievements (id) ON DELETE RESTRICT,
    earned_at      timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- Also the index of user_id and of "a user's achievements".
    CONSTRAINT user_achievements_user_achievement_key UNIQUE (user_id, achievement_id)
);
CREATE INDEX user_achievements_achievement_id_idx ON user_achievements (achievement_id);

-- progress ------------------------------------------------------------------
CREATE TABLE progress (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The item is a whole path or one module; progress goes with it.
    path_id      uuid REFERENCES learning_paths (id) ON DELETE CASCADE,
    module_id    uuid REFERENCES modules (id) ON DELETE CASCADE,
    percent      numeric(5, 2) NOT NULL DEFAULT 0
                 CONSTRAINT progress_percent_range CHECK (percent BETWEEN 0 AND 100),
    status       progress_status NOT NULL DEFAULT 'not_started',
    completed_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT progress_one_item CHECK (num_nonnulls(path_id, module_id) = 1),
    CONSTRAINT progress_completed_is_full CHECK (status <> 'completed' OR (percent = 100 AND completed_at IS NOT NULL)),
    CONSTRAINT progress_not_started_is_zero CHECK (status <> 'not_started' OR percent = 0),
    -- One row per user and item; user_id leads, so these index the user too.
    CONSTRAINT progress_user_path_key UNIQUE (user_id, path_id),
    CONSTRAINT progress_user_module_key UNIQUE (user_id, module_id)
);
CREATE INDEX progress_path_id_idx ON progress (path_id) WHERE path_id IS NOT NULL;
CREATE INDEX progress_module_id_idx ON progress (module_id) WHERE module_id IS NOT NULL;

-- notifications ---------------------------------------------------------------
CREATE TABLE notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type       notification_type NOT NULL,
    payload    jsonb NOT NULL DEFAULT '{}'
               CONSTRAINT notifications_payload_object CHECK (jsonb_typeof(payload) = 'object'),
    read_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_read_after_created CHECK (read_at IS NULL OR read_at >= created_at)
);
CREATE INDEX notifications_user_created_idx ON notifications (user_id, created_at DESC);
-- The badge count and inbox: a user's unread notifications, newest first.
CREATE INDEX notifications_unread_idx ON notifications (user_id, created_at DESC) WHERE read_at IS NULL;

-- audit_log -----------------------------------------------------------------
CREATE TABLE audit_log (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The trail outlives the actor's account (the only update allowed below).
    actor_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    action     text NOT NULL
               CONSTRAINT audit_log_action_not_blank CHECK (length(btrim(action)) BETWEEN 1 AND 100),
    entity     text NOT NULL
               CONSTRAINT audit_log_entity_not_blank CHECK (length(btrim(entity)) BETWEEN 1 AND 100),
    entity_id  uuid,
    before     jsonb,
    after      jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_actor_id_idx ON audit_log (actor_id);
CREATE INDEX audit_log_entity_idx ON audit_log (entity, entity_id, created_at DESC);

-- Append-only: no DELETE, no TRUNCATE, and no UPDATE except the foreign key's
-- ON DELETE SET NULL of actor_id (with the updated_at it brings).
CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND NEW.actor_id IS NULL
       AND (NEW.id, NEW.action, NEW.entity, NEW.entity_id, NEW.before, NEW.after, NEW.created_at)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.action, OLD.entity, OLD.entity_id, OLD.before, OLD.after, OLD.created_at)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'check_violation', HINT = 'insert a new audit_log row instead';
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- updated_at stays current on every table ---------------------------------------
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER learning_paths_set_updated_at BEFORE UPDATE ON learning_paths
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER modules_set_updated_at BEFORE UPDATE ON modules
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER study_sessions_set_updated_at BEFORE UPDATE ON study_sessions
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER assessments_set_updated_at BEFORE UPDATE ON assessments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER assessment_attempts_set_updated_at BEFORE UPDATE ON assessment_attempts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER achievements_set_updated_at BEFORE UPDATE ON achievements
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER user_achievements_set_updated_at BEFORE UPDATE ON user_achievements
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER progress_set_updated_at BEFORE UPDATE ON progress
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER notifications_set_updated_at BEFORE UPDATE ON notifications
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER audit_log_set_updated_at BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
