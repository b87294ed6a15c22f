//! What each environment gets: the volumes (the plan) and the catalogs the
//! rows are made from (names, achievements, path topics).
//!
//! The counts of users, learning paths and achievements are fixed per
//! environment; everything else (sessions, progress, …) follows from them and
//! the random seed, so it is the same on every run too.

use crate::config::Environment;

/// Modules per learning path, in every environment (ids rely on it).
pub const MODULES_PER_PATH: u64 = 5;
/// The achievements production gets: the first ones of [`ACHIEVEMENTS`].
pub const ESSENTIAL_ACHIEVEMENTS: u64 = 10;

/// The production admin account, from PGWARDEN_ADMIN_EMAIL / _PASSWORD.
#[derive(Clone)]
pub struct AdminAccount {
    pub email: String,
    /// argon2id PHC string; never printed.
    pub password_hash: String,
}

impl std::fmt::Debug for AdminAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccount")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// The volumes and switches of one seed run.
#[derive(Clone)]
pub struct Plan {
    pub environment: Environment,
    pub seed: u64,
    /// Unix seconds every timestamp is relative to (see `seed::anchor`).
    pub anchor: i64,
    pub users: u64,
    pub paths: u64,
    pub achievements: u64,
    /// Learning paths each student enrolls in.
    pub enrollments: u64,
    /// Study sessions per module a student works on: 1..=this.
    pub max_sessions_per_module: u64,
    pub notifications_per_user: u64,
    /// Achievements a student has earned: 0..=this.
    pub max_achievements_per_student: u64,
    /// Assessments on every module and path (and attempts by students).
    pub assessments: bool,
    pub audit: bool,
    /// The hash every non-production account gets (one hash, computed once).
    pub user_password_hash: String,
    /// Production: user 0 is this account.
    pub admin: Option<AdminAccount>,
}

impl Plan {
    /// The data set of `environment`, `scale` times the volumes (development).
    pub fn new(environment: Environment, seed: u64, anchor: i64, scale: u64) -> Plan {
        let base = Plan {
            environment,
            seed,
            anchor,
            users: 100,
            paths: 50,
            achievements: 30,
            enrollments: 3,
            max_sessions_per_module: 3,
            notifications_per_user: 4,
            max_achievements_per_student: 4,
            assessments: true,
            audit: true,
            user_password_hash: String::new(),
            admin: None,
        };
        match environment {
            Environment::Development => Plan {
                users: base.users * scale,
                paths: base.paths * scale,
                achievements: base.achievements * scale,
                ..base
            },
            Environment::Staging => Plan {
                users: 50,
                paths: 20,
                achievements: 20,
                enrollments: 2,
                max_sessions_per_module: 1,
                notifications_per_user: 1,
                ..base
            },
            Environment::Production => Plan {
                users: 1,
                paths: 5,
                achievements: ESSENTIAL_ACHIEVEMENTS,
                enrollments: 0,
                max_sessions_per_module: 0,
                notifications_per_user: 0,
                max_achievements_per_student: 0,
                assessments: false,
                audit: false,
                ..base
            },
        }
    }

    /// Number of teacher accounts (the authors of the paths).
    pub fn teachers(&self) -> u64 {
        let n = self.users;
        (n / 20) * 3 + (n % 20).saturating_sub(1).min(3)
    }

    /// The user index of path `path`'s author: a teacher, else the admin (user 0).
    pub fn author_of(&self, path: u64) -> u64 {
        let teachers = self.teachers();
        if teachers == 0 {
            return 0;
        }
        let t = path % teachers;
        (t / 3) * 20 + 1 + t % 3
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Student,
    Teacher,
    Parent,
    Admin,
}

impl Role {
    /// 5% admins, 15% teachers, 10% parents, 70% students; user 0 is an admin.
    pub fn of(user: u64) -> Role {
        match user % 20 {
            0 => Role::Admin,
            1..=3 => Role::Teacher,
            4 | 5 => Role::Parent,
            _ => Role::Student,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::Parent => "parent",
            Role::Admin => "admin",
        }
    }
}

pub const FIRST_NAMES: &[&str] = &[
    "Amara", "Ben", "Chloe", "Diego", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Victor",
    "Wen", "Yusuf", "Zoe",
];

pub const LAST_NAMES: &[&str] = &[
    "Okafor", "Schmidt", "Dubois", "Garcia", "Rossi", "Haddad", "Kim", "Tanaka", "Silva", "Berg",
    "Adeyemi", "Murphy", "Patel", "Novak", "Ivanova", "Sharma", "Walsh", "Moreno", "Nguyen",
    "Larsen",
];

/// (code, title, description, points). The first [`ESSENTIAL_ACHIEVEMENTS`]
/// are the ones every environment, production included, gets.
pub const ACHIEVEMENTS: &[(&str, &str, &str, u32)] = &[
    (
        "first_session",
        "First Steps",
        "Complete your first study session",
        10,
    ),
    (
        "first_module",
        "Module Master",
        "Complete your first module",
        20,
    ),
    (
        "first_path",
        "Pathfinder",
        "Complete a whole learning path",
        100,
    ),
    (
        "first_assessment",
        "Tested",
        "Submit your first assessment",
        10,
    ),
    (
        "perfect_score",
        "Perfectionist",
        "Score 100% on an assessment",
        50,
    ),
    ("streak_3", "On a Roll", "Study three days in a row", 15),
    ("streak_7", "Week Warrior", "Study seven days in a row", 40),
    (
        "streak_30",
        "Unstoppable",
        "Study thirty days in a row",
        150,
    ),
    ("hours_10", "Dedicated", "Study for ten hours in total", 30),
    (
        "hours_100",
        "Scholar",
        "Study for a hundred hours in total",
        200,
    ),
    (
        "early_bird",
        "Early Bird",
        "Start a session before 7 am",
        10,
    ),
    ("night_owl", "Night Owl", "Study after 10 pm", 10),
    (
        "weekend_learner",
        "Weekend Learner",
        "Study on a Saturday and a Sunday",
        15,
    ),
    (
        "three_paths",
        "Explorer",
        "Enroll in three learning paths",
        20,
    ),
    (
        "five_paths",
        "Globetrotter",
        "Complete five learning paths",
        250,
    ),
    (
        "quick_learner",
        "Quick Learner",
        "Finish a module in one session",
        25,
    ),
    ("comeback", "Comeback", "Return after a two-week break", 10),
    (
        "helper",
        "Helper",
        "Answer a question from another learner",
        20,
    ),
    (
        "beginner_done",
        "Foundations",
        "Complete a beginner path",
        40,
    ),
    (
        "intermediate_done",
        "Climbing",
        "Complete an intermediate path",
        80,
    ),
    ("advanced_done", "Summit", "Complete an advanced path", 160),
    (
        "math_fan",
        "Number Cruncher",
        "Complete three math modules",
        30,
    ),
    (
        "science_fan",
        "Lab Rat",
        "Complete three science modules",
        30,
    ),
    (
        "language_fan",
        "Polyglot",
        "Complete three language modules",
        30,
    ),
    (
        "history_fan",
        "Time Traveller",
        "Complete three history modules",
        30,
    ),
    (
        "coding_fan",
        "Hacker",
        "Complete three programming modules",
        30,
    ),
    ("art_fan", "Creative", "Complete three art modules", 30),
    (
        "retry_pass",
        "Persistent",
        "Pass an assessment you failed before",
        20,
    ),
    (
        "all_assessments",
        "Thorough",
        "Pass every assessment of a path",
        60,
    ),
    (
        "mentor",
        "Mentor",
        "Help five learners finish a module",
        100,
    ),
];

/// (subject, topic) of the learning paths.
pub const TOPICS: &[(&str, &str)] = &[
    ("math", "Algebra"),
    ("math", "Geometry"),
    ("math", "Statistics"),
    ("math", "Calculus"),
    ("science", "Biology"),
    ("science", "Chemistry"),
    ("science", "Physics"),
    ("science", "Astronomy"),
    ("language", "English Writing"),
    ("language", "Spanish"),
    ("language", "French"),
    ("history", "Ancient Civilisations"),
    ("history", "Modern History"),
    ("coding", "Python"),
    ("coding", "Web Development"),
    ("coding", "Databases"),
    ("art", "Drawing"),
    ("art", "Music Theory"),
];

pub const MODULE_TITLES: &[&str] = &[
    "Introduction",
    "Core Concepts",
    "Worked Examples",
    "Practice",
    "Review and Next Steps",
];

pub const DIFFICULTIES: &[(&str, &str)] = &[
    ("beginner", "Foundations"),
    ("intermediate", "in Practice"),
    ("advanced", "Deep Dive"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_role_mix_and_authors_are_teachers() {
        let plan = Plan::new(Environment::Development, 1, 0, 1);
        let count = |r| (0..plan.users).filter(|&u| Role::of(u) == r).count();
        assert_eq!(count(Role::Student), 70);
        assert_eq!(count(Role::Teacher), 15);
        assert_eq!(count(Role::Parent), 10);
        assert_eq!(count(Role::Admin), 5);
        assert_eq!(plan.teachers(), 15);
        for p in 0..plan.paths {
            let a = plan.author_of(p);
            assert!(a < plan.users && Role::of(a) == Role::Teacher);
        }
        assert_eq!(ACHIEVEMENTS.len() as u64, plan.achievements);
        assert_eq!(MODULE_TITLES.len() as u64, MODULES_PER_PATH);
    }

    #[test]
    fn production_paths_belong_to_the_admin() {
        let plan = Plan::new(Environment::Production, 1, 0, 1);
        assert_eq!(plan.teachers(), 0);
        assert_eq!(plan.author_of(3), 0);
    }
}
