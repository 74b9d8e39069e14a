//! Administration of a deployment: create the table, seed the system roles, create users, make
//! them staff and issue their API tokens, and move a running Waldur over. It uses the normal AWS
//! configuration, so it works against DynamoDB Local (`AWS_ENDPOINT_URL_DYNAMODB`) and against a
//! deployed table alike.

use std::path::Path;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use shared::import::{self, Options, Progress};
use shared::store::Store;
use shared::users::{self, NewUser, User};
use shared::{Result, roles, time};

const USAGE: &str = "\
usage: admin <command> [options]   (TABLE_NAME and the AWS environment select the table)

  bootstrap [--create-table] [--seed-roles] [--staff-user NAME] [--token-file PATH]
            [--token-lifetime SECONDS|null] [--recount]
      Idempotent set-up of a fresh deployment. With --staff-user, makes sure NAME exists and is
      staff (a new one with the token lifetime given, null by default: its token never
      expires); the token in PATH is kept while it is still NAME's valid token, otherwise a new
      one is issued and written there. The token is printed on the last line.
      --recount recounts the users per customer and the lists' tallies (users, customers,
                projects, invitations, requests, reviews), and gives customers and projects
                the lists' sort keys, for a table made before them; run it while nothing
                else writes.
  new-token-key [ID]        prints a new token key ID=SECRET, for TOKEN_KEYS (no table needed)
  create-table
  seed-roles
  create-user --username NAME [--email ADDRESS] [--first-name X] [--last-name Y] [--staff] [--support]
  make-staff NAME
  issue-token NAME          prints a new token for NAME (the old one stops working)
  set-password NAME         reads the new password from the first line of standard input
  import-waldur (--from-dump FILE | --from-api URL --token STAFF_TOKEN) [--dry-run] [--concurrency N]
      Moves a running Waldur over: roles, customers, projects, users, grants (ended ones as
      history), invitations, requests and reviews, under their own uuids; from a Django dumpdata
      JSON also the password hashes and API tokens (sealed with TOKEN_KEYS, the functions' key).
      Safe to run again and to resume: what is there and equal stays, what differs is reported as
      a conflict and left alone. --dry-run only says what would be written. Exit status 2 when
      something conflicted.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("admin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[String]) -> Result<ExitCode, String> {
    let (command, rest) = args.split_first().ok_or(USAGE)?;
    let flags = Flags::parse(rest)?;
    if command == "new-token-key" {
        let id = flags.positional().unwrap_or("k1");
        println!("{id}={}", shared::secrets::random_secret());
        return Ok(ExitCode::SUCCESS);
    }
    let store = Store::from_env().await.map_err(|e| e.to_string())?;
    if command == "import-waldur" {
        return import_waldur(&store, &flags).await.map_err(|e| e.to_string());
    }
    let outcome = match command.as_str() {
        "bootstrap" => bootstrap(&store, &flags).await,
        "create-table" => store.create_table().await,
        "seed-roles" => seed_roles(&store).await,
        "create-user" => create_user(&store, &flags).await,
        "make-staff" => make_staff(&store, flags.positional()?).await,
        "issue-token" => issue_token(&store, flags.positional()?).await,
        "set-password" => set_password(&store, flags.positional()?).await,
        _ => return Err(USAGE.into()),
    };
    outcome.map(|()| ExitCode::SUCCESS).map_err(|e| e.to_string())
}

struct Flags {
    values: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Flags {
    const SWITCHES: [&str; 6] = [
        "--create-table",
        "--seed-roles",
        "--staff",
        "--support",
        "--recount",
        "--dry-run",
    ];

    fn parse(args: &[String]) -> Result<Self, String> {
        let mut flags = Flags {
            values: Vec::new(),
            positional: Vec::new(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if Self::SWITCHES.contains(&arg.as_str()) {
                flags.values.push((arg.clone(), None));
            } else if arg.starts_with("--") {
                let value = args.next().ok_or(format!("{arg} needs a value"))?;
                flags.values.push((arg.clone(), Some(value.clone())));
            } else {
                flags.positional.push(arg.clone());
            }
        }
        Ok(flags)
    }

    fn has(&self, name: &str) -> bool {
        self.values.iter().any(|(flag, _)| flag == name)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(flag, _)| flag == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn positional(&self) -> Result<&str, String> {
        self.positional
            .first()
            .map(String::as_str)
            .ok_or_else(|| USAGE.to_owned())
    }
}

async fn bootstrap(store: &Store, flags: &Flags) -> Result<()> {
    if flags.has("--create-table") {
        store.create_table().await?;
        eprintln!("table {} is ready", store.table());
    }
    if flags.has("--seed-roles") {
        seed_roles(store).await?;
    }
    if flags.has("--recount") {
        let users = users::recount(store).await?;
        eprintln!("users per customer recounted ({users} users)");
        let reindexed = shared::scopes::reindex(store).await?;
        eprintln!("{reindexed} customers and projects given the lists' sort keys");
        for tally in shared::store::Tally::ALL {
            let count = store.recount_tally(tally).await?;
            eprintln!("tally of {} recounted: {count}", tally.sort_key());
        }
    }
    let Some(username) = flags.value("--staff-user") else {
        return Ok(());
    };
    let now = time::now();
    let user = match users::find_by_username(store, username).await? {
        Some(user) if user.is_staff => user,
        Some(user) => users::make_staff(store, None, &user, &now).await?,
        None => {
            let token_lifetime = match flags.value("--token-lifetime") {
                None | Some("null") => None,
                Some(seconds) => Some(
                    seconds
                        .parse::<i64>()
                        .ok()
                        .filter(|s| *s >= users::MIN_TOKEN_LIFETIME)
                        .ok_or_else(|| {
                            shared::Error::internal("--token-lifetime: seconds (60 or more) or null")
                        })?,
                ),
            };
            let new = NewUser {
                username: username.to_owned(),
                is_staff: true,
                token_lifetime,
                ..NewUser::default()
            };
            users::create(store, None, new, &now).await?
        }
    };
    let token_file = flags.value("--token-file");
    let current = users::current_token(store, &user, &now)
        .await?
        .map(|(token, _)| token);
    // The file's token is kept while it is the user's token and has not expired.
    let kept = token_file
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .filter(|token| current.as_ref() == Some(token));
    let token = match kept {
        Some(token) => token,
        None => {
            let token = users::issue_token(store, None, &user, &now).await?;
            if let Some(path) = token_file {
                write_secret(Path::new(path), &token)?;
            }
            token
        }
    };
    eprintln!("staff user {} ({})", user.username, user.uuid);
    println!("{token}");
    Ok(())
}

async fn seed_roles(store: &Store) -> Result<()> {
    let created = roles::seed_system_roles(store, &time::now()).await?;
    eprintln!(
        "system roles: {created} created, {} already present",
        roles::SYSTEM_ROLES.len() - created
    );
    Ok(())
}

async fn create_user(store: &Store, flags: &Flags) -> Result<()> {
    let text = |name: &str| flags.value(name).unwrap_or_default().to_owned();
    let new = NewUser {
        username: text("--username"),
        email: text("--email"),
        first_name: text("--first-name"),
        last_name: text("--last-name"),
        is_staff: flags.has("--staff"),
        is_support: flags.has("--support"),
        token_lifetime: users::default_token_lifetime(),
        ..NewUser::default()
    };
    let user = users::create(store, None, new, &time::now()).await?;
    println!("{}", user.uuid);
    Ok(())
}

async fn find(store: &Store, username: &str) -> Result<User> {
    users::find_by_username(store, username)
        .await?
        .ok_or_else(|| shared::Error::not_found("User"))
}

async fn make_staff(store: &Store, username: &str) -> Result<()> {
    let user = find(store, username).await?;
    users::make_staff(store, None, &user, &time::now()).await?;
    eprintln!("{username} is staff");
    Ok(())
}

async fn issue_token(store: &Store, username: &str) -> Result<()> {
    let user = find(store, username).await?;
    println!("{}", users::issue_token(store, None, &user, &time::now()).await?);
    Ok(())
}

async fn set_password(store: &Store, username: &str) -> Result<()> {
    let user = find(store, username).await?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(shared::Error::internal)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        return Err(shared::Error::field(
            "password",
            "Ensure this field has at least 8 characters.",
        ));
    }
    users::set_password(store, None, &user, password, &time::now()).await?;
    eprintln!("password of {username} set");
    Ok(())
}

/// The progress bar of an import, on standard error.
struct Bar(ProgressBar);

impl Progress for Bar {
    fn stage(&self, name: &str, total: u64) {
        let template = if total == 0 {
            "{msg:>24} {spinner} {pos} pages  {elapsed}"
        } else {
            "{msg:>24} [{bar:40}] {pos}/{len}  {elapsed}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            self.0.set_style(style.progress_chars("=> "));
        }
        self.0.reset();
        self.0.set_length(total);
        self.0.set_message(name.to_owned());
    }

    fn advance(&self, steps: u64) {
        self.0.inc(steps);
    }
}

async fn import_waldur(store: &Store, flags: &Flags) -> Result<ExitCode> {
    let options = Options {
        dry_run: flags.has("--dry-run"),
        concurrency: match flags.value("--concurrency") {
            Some(n) => n
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| shared::Error::internal("--concurrency: a number above 0"))?,
            None => Options::default().concurrency,
        },
    };
    let now = time::now();
    let bar = Bar(ProgressBar::new(0));
    let snapshot = match (flags.value("--from-dump"), flags.value("--from-api")) {
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| shared::Error::internal(format!("reading {path}: {e}")))?;
            import::dump::parse(&text, &now)?
        }
        (None, Some(url)) => {
            let token = flags
                .value("--token")
                .ok_or_else(|| shared::Error::internal("--from-api needs --token STAFF_TOKEN"))?;
            import::api::fetch(url, token, &bar, &now).await?
        }
        _ => return Err(shared::Error::internal(USAGE)),
    };
    let report = import::run(store, &snapshot, options, &bar, &now).await;
    bar.0.finish_and_clear();
    let report = report.map_err(|e| {
        shared::Error::Unavailable(format!(
            "{e}\nWhat was written is consistent; run the same import again to finish it."
        ))
    })?;
    for change in &report.changes {
        println!("{change}");
    }
    if !report.changes.is_empty() {
        println!();
    }
    print!("{report}");
    if report.dry_run {
        println!("\ndry run: nothing was written");
    }
    Ok(if report.conflicts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn write_secret(path: &Path, token: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(shared::Error::internal)?;
    }
    std::fs::write(path, format!("{token}\n")).map_err(shared::Error::internal)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(shared::Error::internal)?;
    }
    Ok(())
}
