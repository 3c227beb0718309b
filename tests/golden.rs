//! Golden tests: what people read — `members`, `audit`, `verify`, the add and remove summaries and
//! the main errors — compared byte for byte with `tests/golden/*.txt`, on the demo team's fixed
//! keys (`keys/`). What changes from run to run is redacted: commit ids, dates, the lab's path.
//!
//! After an intended change of wording, regenerate and review the diff:
//! `SNAPSHOTS=overwrite cargo test --test golden`.

mod common;

use common::*;
use snapbox::{Assert, Redactions};

/// A transcript of vault commands: each command line, its stdout, then its stderr, and a non-zero
/// exit code, as a person would see them in a terminal (without colours: not a terminal).
struct Transcript<'a> {
    lab: &'a Lab,
    store: &'a Store,
    operator: &'a Person,
    text: String,
}

impl Transcript<'_> {
    fn vault(&mut self, args: &[&str]) -> &mut Self {
        let run = self.lab.vault_as(self.store, self.operator, args);
        self.text.push_str(&format!("$ vault {}\n", args.join(" ")));
        self.text.push_str(&run.stdout);
        self.text.push_str(&run.stderr);
        if run.code != Some(0) {
            self.text
                .push_str(&format!("[exit {}]\n", run.code.unwrap_or(-1)));
        }
        self.text.push('\n');
        self
    }

    #[track_caller]
    fn matches(&self, golden: &str) {
        let mut redactions = Redactions::new();
        let lab = self.lab.path("");
        redactions
            .insert(
                "[LAB]",
                lab.to_str().unwrap().trim_end_matches('/').to_string(),
            )
            .unwrap();
        redactions
            .insert("[REPO]", env!("CARGO_MANIFEST_DIR").to_string())
            .unwrap();
        // Each person's key files live in a temporary folder of their own.
        redactions
            .insert(
                "[KEYS]",
                regex::Regex::new(r"/tmp/vt-gpg\.[^/ ]+/files").unwrap(),
            )
            .unwrap();
        redactions
            .insert("[COMMIT]", regex::Regex::new(r"\b[0-9a-f]{10}\b").unwrap())
            .unwrap();
        redactions
            .insert(
                "[DATE]",
                regex::Regex::new(r"\b\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\dZ)?\b").unwrap(),
            )
            .unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(golden);
        Assert::new()
            .action_env("SNAPSHOTS")
            // Backslashes are text here (Markdown escapes), not Windows path separators.
            .normalize_paths(false)
            .redact_with(redactions)
            .eq(self.text.clone(), snapbox::Data::read_from(&path, None));
    }
}

/// The demo team: akshay (operator; his is the only secret key), noah, nick and will.
fn demo_team() -> (Lab, Store, [Person; 4]) {
    let person = |name: &str, secret: bool| {
        let public = demo_key(&format!("{name}.asc"));
        let secret = secret.then(|| demo_key(&format!("{name}.secret.asc")));
        Person::from_files(name, &public, secret.as_deref())
    };
    let (akshay, noah, nick, will) = (
        person("akshay", true),
        person("noah", false),
        person("nick", false),
        person("will", false),
    );
    introduce(&[&akshay, &noah, &nick, &will]);
    let lab = Lab::new();
    let store = pass_store(&lab, &akshay, &[&akshay, &noah, &nick], &[&akshay, &noah]);
    (lab, store, [akshay, noah, nick, will])
}

#[test]
fn a_membership_week_reads_as_it_always_did() {
    let (lab, store, [akshay, _noah, nick, will]) = demo_team();
    let mut t = Transcript {
        lab: &lab,
        store: &store,
        operator: &akshay,
        text: String::new(),
    };
    let will_args = will.add_member_args();
    t.vault(&["init"])
        .vault(&["members"])
        .vault(&will_args)
        .vault(&["--yes", "remove-member", "nick"])
        .vault(&["members"])
        .vault(&["audit"])
        .vault(&["verify"]);
    t.matches("week.txt");
    lab.assert_cannot_read(&store, &nick, ROOT_ENTRIES);
}

#[test]
fn the_main_errors_read_as_they_always_did() {
    let (lab, store, [akshay, _noah, _nick, will]) = demo_team();
    let mut t = Transcript {
        lab: &lab,
        store: &store,
        operator: &akshay,
        text: String::new(),
    };
    let secret = demo_key("akshay.secret.asc");
    t.vault(&["members"])
        .vault(&["init"])
        .vault(&["remove-member", "nobody"])
        .vault(&["add-member", secret.to_str().unwrap()])
        .vault(&["add-member", will.public_str(), "--folder", "opz"])
        .vault(&[
            "add-member",
            will.public_str(),
            "--fingerprint",
            &"0".repeat(40),
        ])
        .vault(&["add-member", "/nonexistent/will.asc"])
        .vault(&["audit", "--member", "will"]);
    t.matches("errors.txt");
}

#[test]
fn the_store_readme_reads_as_written() {
    let (lab, store, [akshay, _noah, _nick, will]) = demo_team();
    let mut t = Transcript {
        lab: &lab,
        store: &store,
        operator: &akshay,
        text: String::new(),
    };
    let will_args = will.add_member_args();
    t.vault(&["init"])
        .vault(&["readme"])
        .vault(&will_args)
        .vault(&["--yes", "remove-member", "nick"]);
    t.text = store.read("README.md");
    t.matches("readme.md");
}

#[test]
fn the_daily_listings_and_the_rotate_walk_read_as_written() {
    let (lab, store, [akshay, _noah, _nick, _will]) = demo_team();
    let mut t = Transcript {
        lab: &lab,
        store: &store,
        operator: &akshay,
        text: String::new(),
    };
    t.vault(&["init"])
        .vault(&["ls"])
        .vault(&["ls", "ops"])
        .vault(&["find", "shop", "BANK"])
        .vault(&["--yes", "remove-member", "nick"])
        .vault(&["--yes", "rotate"])
        .vault(&["--yes", "rotate"]);
    t.matches("daily.txt");
}
