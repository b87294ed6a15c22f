//! The deterministic generator: typed rows of every table, for COPY.
//!
//! Rows are generated per *unit* (a user, a path, an achievement), each from
//! its own random stream ([`Rng::for_row`]), so any range of units can be
//! generated on its own: the writer streams millions of rows in chunks, and a
//! student's learning journey is recomputed identically for each of the
//! three tables it feeds (sessions, progress, attempts).
//!
//! Timestamps are offsets from the plan's anchor, never `now()`.

use std::ops::Range;
use std::sync::LazyLock;

use uuid::Uuid;

use serde_json::json;

use super::dataset::*;
use super::ids::{Kind, Rng, id};
use super::rows::Rows;

const MINUTE: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// The seeded tables, in insertion (foreign key) order.
pub const TABLES: [Table; 11] = [
    Table::Users,
    Table::Achievements,
    Table::LearningPaths,
    Table::Modules,
    Table::Assessments,
    Table::StudySessions,
    Table::Progress,
    Table::AssessmentAttempts,
    Table::UserAchievements,
    Table::Notifications,
    Table::AuditLog,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Users,
    Achievements,
    LearningPaths,
    Modules,
    Assessments,
    StudySessions,
    Progress,
    AssessmentAttempts,
    UserAchievements,
    Notifications,
    AuditLog,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Achievements => "achievements",
            Table::LearningPaths => "learning_paths",
            Table::Modules => "modules",
            Table::Assessments => "assessments",
            Table::StudySessions => "study_sessions",
            Table::Progress => "progress",
            Table::AssessmentAttempts => "assessment_attempts",
            Table::UserAchievements => "user_achievements",
            Table::Notifications => "notifications",
            Table::AuditLog => "audit_log",
        }
    }

    /// The columns, in the order [`emit`] writes them.
    pub fn columns(self) -> &'static str {
        match self {
            Table::Users => {
                "id, email, display_name, role, password_hash, preferences, is_active, last_login_at, created_at, updated_at"
            }
            Table::Achievements => {
                "id, code, title, description, criteria, points, created_at, updated_at"
            }
            Table::LearningPaths => {
                "id, title, description, difficulty, is_published, metadata, author_id, created_at, updated_at"
            }
            Table::Modules => {
                "id, path_id, title, position, content, estimated_minutes, created_at, updated_at"
            }
            Table::Assessments => {
                "id, module_id, path_id, title, questions, max_score, passing_score, created_at, updated_at"
            }
            Table::StudySessions => {
                "id, user_id, module_id, started_at, ended_at, duration_seconds, created_at, updated_at"
            }
            Table::Progress => {
                "id, user_id, path_id, module_id, percent, status, completed_at, created_at, updated_at"
            }
            Table::AssessmentAttempts => {
                "id, assessment_id, max_score, user_id, score, started_at, submitted_at, created_at, updated_at"
            }
            Table::UserAchievements => {
                "id, user_id, achievement_id, earned_at, created_at, updated_at"
            }
            Table::Notifications => "id, user_id, type, payload, read_at, created_at, updated_at",
            Table::AuditLog => {
                "id, actor_id, action, entity, entity_id, before, after, created_at, updated_at"
            }
        }
    }

    /// How many units drive this table's rows.
    pub fn units(self, plan: &Plan) -> u64 {
        match self {
            Table::Achievements => plan.achievements,
            Table::LearningPaths | Table::Modules => plan.paths,
            Table::Assessments if plan.assessments => plan.paths,
            Table::Assessments => 0,
            Table::AuditLog if !plan.audit => 0,
            _ => plan.users,
        }
    }
}

/// Append the rows of `table` for `units` to `rows`.
pub fn emit(table: Table, plan: &Plan, units: Range<u64>, rows: &mut Rows) {
    for unit in units {
        match table {
            Table::Users => user_row(plan, unit, rows),
            Table::Achievements => achievement_row(plan, unit, rows),
            Table::LearningPaths => path_row(plan, unit, rows),
            Table::Modules => module_rows(plan, unit, rows),
            Table::Assessments => assessment_rows(plan, unit, rows),
            Table::StudySessions => session_rows(plan, unit, rows),
            Table::Progress => progress_rows(plan, unit, rows),
            Table::AssessmentAttempts => attempt_rows(plan, unit, rows),
            Table::UserAchievements => user_achievement_rows(plan, unit, rows),
            Table::Notifications => notification_rows(plan, unit, rows),
            Table::AuditLog => audit_rows(plan, unit, rows),
        }
    }
}

// users -----------------------------------------------------------------------

struct User {
    id: Uuid,
    email: String,
    display_name: String,
    role: Role,
    active: bool,
    last_login: Option<i64>,
    created: i64,
    theme: &'static str,
    locale: &'static str,
    digest: bool,
}

fn user(plan: &Plan, u: u64) -> User {
    let mut rng = Rng::for_row(plan.seed, Kind::User, u);
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let created = plan.anchor - rng.between(60, 400) * DAY - rng.below(DAY as u64) as i64;
    let active = u == 0 || rng.chance(97);
    let last_login =
        (active && rng.chance(90)).then(|| plan.anchor - rng.below(14 * DAY as u64) as i64);
    let theme = *rng.pick(&["light", "dark", "system"]);
    let locale = *rng.pick(&["en", "en", "es", "fr", "de"]);
    let digest = rng.chance(60);
    let (email, role) = match &plan.admin {
        Some(admin) if u == 0 => (admin.email.clone(), Role::Admin),
        _ => (
            format!(
                "{}.{}{u}@example.edu",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase()
            ),
            Role::of(u),
        ),
    };
    User {
        id: id(plan.seed, Kind::User, u),
        email,
        display_name: format!("{first} {last}"),
        role,
        active,
        last_login,
        created,
        theme,
        locale,
        digest,
    }
}

fn user_row(plan: &Plan, u: u64, rows: &mut Rows) {
    let user = user(plan, u);
    let hash = match &plan.admin {
        Some(admin) if u == 0 => &admin.password_hash,
        _ => &plan.user_password_hash,
    };
    let prefs = json!({"theme": user.theme, "locale": user.locale, "weekly_digest": user.digest});
    rows.uuid(user.id)
        .text(user.email)
        .text(user.display_name)
        .text(user.role.as_str())
        .text(hash.clone())
        .json(prefs)
        .bool(user.active)
        .opt_ts(user.last_login)
        .ts(user.created)
        .ts(user.created)
        .end();
}

// achievements ------------------------------------------------------------------

fn achievement_row(plan: &Plan, a: u64, rows: &mut Rows) {
    let (code, title, description, points) = ACHIEVEMENTS[(a % ACHIEVEMENTS.len() as u64) as usize];
    // Beyond the catalog (--scale), numbered variants keep codes unique.
    let round = a / ACHIEVEMENTS.len() as u64;
    let (code, title) = if round == 0 {
        (code.to_string(), title.to_string())
    } else {
        (format!("{code}_{round}"), format!("{title} {}", round + 1))
    };
    let criteria = json!({"event": code, "count": round + 1});
    let created = plan.anchor - 400 * DAY + a as i64 * MINUTE;
    rows.uuid(id(plan.seed, Kind::Achievement, a))
        .text(code)
        .text(title)
        .text(description)
        .json(criteria)
        .int(i64::from(points) * (round as i64 + 1))
        .ts(created)
        .ts(created)
        .end();
}

// learning paths, modules, assessments ------------------------------------------------

struct Path {
    title: String,
    subject: &'static str,
    difficulty: &'static str,
    published: bool,
    created: i64,
}

fn path(plan: &Plan, p: u64) -> Path {
    let (subject, topic) = TOPICS[(p % TOPICS.len() as u64) as usize];
    let (difficulty, suffix) = DIFFICULTIES[((p / TOPICS.len() as u64) % 3) as usize];
    let part = p / (TOPICS.len() as u64 * 3);
    let title = if part == 0 {
        format!("{topic} {suffix}")
    } else {
        format!("{topic} {suffix}, part {}", part + 1)
    };
    let mut rng = Rng::for_row(plan.seed, Kind::Path, p);
    Path {
        title,
        subject,
        difficulty,
        published: p % 10 != 9,
        created: plan.anchor - rng.between(100, 300) * DAY - rng.below(DAY as u64) as i64,
    }
}

fn path_row(plan: &Plan, p: u64, rows: &mut Rows) {
    let path = path(plan, p);
    let description = format!(
        "A {} path in {}: {MODULES_PER_PATH} modules, a quiz after each and a final assessment.",
        path.difficulty, path.subject
    );
    let metadata =
        json!({"subject": path.subject, "language": "en", "estimated_hours": 3 + p % 10});
    rows.uuid(id(plan.seed, Kind::Path, p))
        .text(path.title)
        .text(description)
        .text(path.difficulty)
        .bool(path.published)
        .json(metadata)
        .uuid(id(plan.seed, Kind::User, plan.author_of(p)))
        .ts(path.created)
        .ts(path.created)
        .end();
}

fn module_index(p: u64, m: u64) -> u64 {
    p * MODULES_PER_PATH + m
}

fn module_rows(plan: &Plan, p: u64, rows: &mut Rows) {
    let created = path(plan, p).created;
    let mut rng = Rng::for_row(plan.seed, Kind::Module, p);
    for m in 0..MODULES_PER_PATH {
        let content = json!({
            "kind": if m % 2 == 0 { "lesson" } else { "exercise" },
            "sections": rng.between(2, 8),
        });
        rows.uuid(id(plan.seed, Kind::Module, module_index(p, m)))
            .uuid(id(plan.seed, Kind::Path, p))
            .text(format!("{}. {}", m + 1, MODULE_TITLES[m as usize]))
            .int(m as i64)
            .json(content)
            .int(rng.between(15, 60))
            .ts(created + m as i64 * HOUR)
            .ts(created + m as i64 * HOUR)
            .end();
    }
}

/// The quiz of module `m` of a path, or (m == MODULES_PER_PATH) its final.
fn assessment_index(p: u64, m: u64) -> u64 {
    p * (MODULES_PER_PATH + 1) + m
}

const QUIZ_MAX: i64 = 10;
const FINAL_MAX: i64 = 100;

/// Every assessment's questions: built once, shared by every row.
static QUESTIONS: LazyLock<serde_json::Value> = LazyLock::new(|| {
    let choices = json!(["A", "B", "C", "D"]);
    json!([
        {"prompt": "Question 1", "choices": choices, "answer": 1},
        {"prompt": "Question 2", "choices": choices, "answer": 3},
        {"prompt": "Question 3", "choices": ["true", "false"], "answer": 0},
    ])
});

fn assessment_rows(plan: &Plan, p: u64, rows: &mut Rows) {
    let path = path(plan, p);
    let created = path.created + DAY;
    for m in 0..=MODULES_PER_PATH {
        rows.uuid(id(plan.seed, Kind::Assessment, assessment_index(p, m)));
        if m < MODULES_PER_PATH {
            rows.uuid(id(plan.seed, Kind::Module, module_index(p, m)))
                .null()
                .text(format!("Quiz: {}", MODULE_TITLES[m as usize]))
                .json_static(&QUESTIONS)
                .int(QUIZ_MAX)
                .int(7);
        } else {
            rows.null()
                .uuid(id(plan.seed, Kind::Path, p))
                .text(format!("Final assessment: {}", path.title))
                .json_static(&QUESTIONS)
                .int(FINAL_MAX)
                .int(70);
        }
        rows.ts(created).ts(created).end();
    }
}

// a student's learning journey ------------------------------------------------

/// Work on one module: its sessions (start, end) and the percent reached.
struct ModuleWork {
    module: u64,
    sessions: Vec<(i64, i64)>,
    percent: i64,
}

impl ModuleWork {
    fn last_end(&self) -> i64 {
        self.sessions.last().map(|s| s.1).unwrap_or_default()
    }
}

struct Enrollment {
    path: u64,
    start: i64,
    /// Modules 0.. in order: all completed but possibly the last.
    modules: Vec<ModuleWork>,
}

impl Enrollment {
    fn completed(&self) -> bool {
        self.modules.len() as u64 == MODULES_PER_PATH
            && self.modules.iter().all(|m| m.percent == 100)
    }

    /// The path's percent in hundredths: completed modules plus the partial one.
    fn hundredths(&self) -> i64 {
        self.modules.iter().map(|m| m.percent).sum::<i64>() * 100 / MODULES_PER_PATH as i64
    }

    fn last_activity(&self) -> i64 {
        self.modules
            .last()
            .map(ModuleWork::last_end)
            .unwrap_or(self.start)
    }
}

/// The paths a student enrolled in and how far they got; only students have one.
/// Progress follows the sessions: a module is completed after its sessions, the
/// next one may be in progress, the rest untouched.
fn journey(plan: &Plan, u: u64) -> Vec<Enrollment> {
    if Role::of(u) != Role::Student || (plan.admin.is_some() && u == 0) {
        return Vec::new();
    }
    let mut rng = Rng::for_row(plan.seed, Kind::Journey, u);
    let mut chosen: Vec<u64> = Vec::new();
    for _ in 0..plan.enrollments * 20 {
        if chosen.len() as u64 == plan.enrollments {
            break;
        }
        let p = rng.below(plan.paths);
        if path_published(p) && !chosen.contains(&p) {
            chosen.push(p);
        }
    }
    chosen
        .into_iter()
        .map(|p| enrollment(plan, &mut rng, p))
        .collect()
}

fn path_published(p: u64) -> bool {
    p % 10 != 9
}

fn enrollment(plan: &Plan, rng: &mut Rng, path: u64) -> Enrollment {
    let completed = rng.below(MODULES_PER_PATH + 1);
    let partial = (completed < MODULES_PER_PATH && rng.chance(70)).then(|| rng.between(10, 90));
    let start = plan.anchor - rng.between(7, 56) * DAY - rng.below(DAY as u64) as i64;
    let touched = completed + u64::from(partial.is_some());
    let counts: Vec<u64> = (0..touched)
        .map(|_| rng.between(1, plan.max_sessions_per_module.max(1) as i64) as u64)
        .collect();
    // Sessions spread evenly from the start to an hour before the anchor.
    let total: u64 = counts.iter().sum();
    let slot = (plan.anchor - HOUR - start) / (total.max(1) as i64);
    let mut n = 0;
    let modules = counts
        .iter()
        .enumerate()
        .map(|(m, &count)| {
            let sessions = (0..count)
                .map(|_| {
                    let begin = start + n * slot + rng.below((slot / 4) as u64) as i64;
                    let length = rng.between(10 * MINUTE, (90 * MINUTE).min(slot / 2));
                    n += 1;
                    (begin, begin + length)
                })
                .collect();
            ModuleWork {
                module: module_index(path, m as u64),
                sessions,
                percent: if (m as u64) < completed {
                    100
                } else {
                    partial.unwrap_or(0)
                },
            }
        })
        .collect();
    Enrollment {
        path,
        start,
        modules,
    }
}

/// Per-user id slots: ids are `user * STRIDE + n`, stable whatever the volumes.
const SESSION_STRIDE: u64 = 64;
const ROW_STRIDE: u64 = 32;

fn session_rows(plan: &Plan, u: u64, rows: &mut Rows) {
    let user_id = id(plan.seed, Kind::User, u);
    let mut n = 0;
    for enrollment in journey(plan, u) {
        for work in &enrollment.modules {
            for &(start, end) in &work.sessions {
                rows.uuid(id(plan.seed, Kind::Session, u * SESSION_STRIDE + n))
                    .uuid(user_id)
                    .uuid(id(plan.seed, Kind::Module, work.module))
                    .ts(start)
                    .ts(end)
                    .int(end - start)
                    .ts(start)
                    .ts(end)
                    .end();
                n += 1;
            }
        }
    }
}

fn progress_rows(plan: &Plan, u: u64, rows: &mut Rows) {
    let user_id = id(plan.seed, Kind::User, u);
    let mut n = 0;
    let mut next_id = || {
        n += 1;
        id(plan.seed, Kind::Progress, u * ROW_STRIDE + n - 1)
    };
    for e in journey(plan, u) {
        let hundredths = e.hundredths();
        let (status, completed_at) = if e.completed() {
            ("completed", Some(e.last_activity()))
        } else if hundredths == 0 {
            ("not_started", None)
        } else {
            ("in_progress", None)
        };
        rows.uuid(next_id())
            .uuid(user_id)
            .uuid(id(plan.seed, Kind::Path, e.path))
            .null()
            .hundredths(hundredths)
            .text(status)
            .opt_ts(completed_at)
            .ts(e.start)
            .ts(e.last_activity())
            .end();
        for work in &e.modules {
            let done = work.percent == 100;
            rows.uuid(next_id())
                .uuid(user_id)
                .null()
                .uuid(id(plan.seed, Kind::Module, work.module))
                .hundredths(work.percent * 100)
                .text(if done { "completed" } else { "in_progress" })
                .opt_ts(done.then(|| work.last_end()))
                .ts(work.sessions[0].0)
                .ts(work.last_end())
                .end();
        }
    }
}

fn attempt_rows(plan: &Plan, u: u64, rows: &mut Rows) {
    if !plan.assessments {
        return;
    }
    let user_id = id(plan.seed, Kind::User, u);
    let mut rng = Rng::for_row(plan.seed, Kind::Attempt, u);
    let mut n = 0;
    let mut attempt =
        |rows: &mut Rows, assessment: u64, max: i64, start: i64, score: Option<i64>, took: i64| {
            let submitted = score.map(|_| start + took);
            rows.uuid(id(plan.seed, Kind::Attempt, u * ROW_STRIDE + n))
                .uuid(id(plan.seed, Kind::Assessment, assessment))
                .int(max)
                .uuid(user_id)
                .opt_int(score)
                .ts(start)
                .opt_ts(submitted)
                .ts(start)
                .ts(submitted.unwrap_or(start))
                .end();
            n += 1;
        };
    for e in journey(plan, u) {
        for (m, work) in e.modules.iter().enumerate() {
            let quiz = assessment_index(e.path, m as u64);
            let took = rng.between(5, 20) * MINUTE;
            if work.percent == 100 {
                let score = rng.between(5, QUIZ_MAX);
                attempt(rows, quiz, QUIZ_MAX, work.last_end(), Some(score), took);
            } else if rng.chance(30) {
                // Started, not submitted yet.
                attempt(rows, quiz, QUIZ_MAX, work.last_end(), None, took);
            }
        }
        if e.completed() {
            let final_ = assessment_index(e.path, MODULES_PER_PATH);
            let score = rng.between(55, FINAL_MAX);
            let took = rng.between(20, 60) * MINUTE;
            attempt(
                rows,
                final_,
                FINAL_MAX,
                e.last_activity(),
                Some(score),
                took,
            );
        }
    }
}

// achievements earned, notifications, audit log ----------------------------------

fn user_achievement_rows(plan: &Plan, u: u64, rows: &mut Rows) {
    if Role::of(u) != Role::Student || plan.achievements == 0 {
        return;
    }
    let mut rng = Rng::for_row(plan.seed, Kind::UserAchievement, u);
    let count = rng
        .below(plan.max_achievements_per_student + 1)
        .min(plan.achievements);
    let first = rng.below(plan.achievements);
    for t in 0..count {
        let earned = plan.anchor - rng.between(1, 50) * DAY - rng.below(DAY as u64) as i64;
        rows.uuid(id(plan.seed, Kind::UserAchievement, u * ROW_STRIDE + t))
            .uuid(id(plan.seed, Kind::User, u))
            .uuid(id(
                plan.seed,
                Kind::Achievement,
                (first + t) % plan.achievements,
            ))
            .ts(earned)
            .ts(earned)
            .ts(earned)
            .end();
    }
}

const NOTIFICATIONS: &[(&str, &str)] = &[
    ("achievement", "You earned a new achievement"),
    ("reminder", "Time for your daily study session"),
    ("assessment_result", "Your quiz result is ready"),
    ("message", "New message from your teacher"),
    ("system", "Scheduled maintenance on Sunday night"),
];

fn notification_rows(plan: &Plan, u: u64, rows: &mut Rows) {
    let mut rng = Rng::for_row(plan.seed, Kind::Notification, u);
    for k in 0..plan.notifications_per_user {
        let (kind, title) = *rng.pick(NOTIFICATIONS);
        let created = plan.anchor - rng.below(28 * DAY as u64) as i64;
        let read = rng.chance(55);
        let read_at = read.then(|| (created + rng.between(5 * MINUTE, 2 * DAY)).min(plan.anchor));
        let payload = json!({"title": title, "link": format!("/inbox/{k}")});
        rows.uuid(id(plan.seed, Kind::Notification, u * ROW_STRIDE + k))
            .uuid(id(plan.seed, Kind::User, u))
            .text(kind)
            .json(payload)
            .opt_ts(read_at)
            .ts(created)
            .ts(read_at.unwrap_or(created))
            .end();
    }
}

fn audit_rows(plan: &Plan, u: u64, rows: &mut Rows) {
    let user = user(plan, u);
    // The first admin created everyone else; nobody created the first admin.
    let creator = (u != 0).then(|| id(plan.seed, Kind::User, 0));
    let after = json!({"role": user.role.as_str(), "is_active": user.active});
    rows.uuid(id(plan.seed, Kind::Audit, u * 2))
        .opt_uuid(creator)
        .text("user.create")
        .text("users")
        .uuid(user.id)
        .null()
        .json(after)
        .ts(user.created)
        .ts(user.created)
        .end();
    if u % 4 == 1 {
        let at = user.created + DAY * (1 + (u % 30) as i64);
        rows.uuid(id(plan.seed, Kind::Audit, u * 2 + 1))
            .uuid(user.id)
            .text("user.update_preferences")
            .text("users")
            .uuid(user.id)
            .json(json!({"theme": "light"}))
            .json(json!({"theme": user.theme}))
            .ts(at)
            .ts(at)
            .end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    fn all_rows(plan: &Plan, table: Table) -> Rows {
        let mut rows = Rows::default();
        emit(table, plan, 0..table.units(plan), &mut rows);
        rows
    }

    #[test]
    fn generation_is_deterministic_and_chunkable() {
        let plan = Plan::new(Environment::Development, 42, 1_700_000_000, 1);
        for table in TABLES {
            let whole = all_rows(&plan, table);
            let mut rows = Rows::default();
            let units = table.units(&plan);
            emit(table, &plan, 0..units / 3, &mut rows);
            emit(table, &plan, units / 3..units, &mut rows);
            assert_eq!(whole, rows, "{}", table.name());
            assert!(!whole.is_empty(), "{} is empty", table.name());
        }
    }

    #[test]
    fn every_row_has_a_value_for_each_column() {
        let plan = Plan::new(Environment::Development, 42, 1_700_000_000, 1);
        for table in TABLES {
            let columns = table.columns().split(", ").count();
            for row in all_rows(&plan, table).iter() {
                assert_eq!(row.len(), columns, "{}: {row:?}", table.name());
            }
        }
    }

    #[test]
    fn sessions_lie_before_the_anchor_and_within_eight_weeks() {
        let anchor = 1_700_000_000;
        let plan = Plan::new(Environment::Development, 42, anchor, 1);
        for u in 0..plan.users {
            for e in journey(&plan, u) {
                for w in &e.modules {
                    for &(s, end) in &w.sessions {
                        assert!(s >= anchor - 57 * DAY && end < anchor && end > s);
                    }
                }
            }
        }
    }
}
