-- Reverts V20240901000000__education_schema: drops exactly what it created.
-- No CASCADE: if something else has come to depend on these objects, this
-- fails (and rolls back) instead of silently dropping it too. Dropping a
-- table drops its indexes, constraints and triggers.

DROP TABLE audit_log;
DROP TABLE notifications;
DROP TABLE progress;
DROP TABLE user_achievements;
DROP TABLE achievements;
DROP TABLE assessment_attempts;
DROP TABLE assessments;
DROP TABLE study_sessions;
DROP TABLE modules;
DROP TABLE learning_paths;
DROP TABLE users;

DROP FUNCTION audit_log_append_only();
DROP FUNCTION set_updated_at();

DROP TYPE notification_type;
DROP TYPE progress_status;
DROP TYPE difficulty_level;
DROP TYPE user_role;
