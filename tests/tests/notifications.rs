//! Notifications reach people: the outbox items written by requests, decisions and the
//! scheduler are delivered by the notifier's handler (`notifier_function::handle`, fed the
//! stream records of the outbox items as the event source mapping would, or by the local
//! runner's reader of the table's real stream) to a real MailDev, over SMTP, against DynamoDB
//! Local.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration as Wait, Instant};

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::DynamoDbEventResponse as BatchResponse;
use chrono::Duration;
use integration_tests::TestApi;
use integration_tests::mail::{self, MailDev};
use local_api::streams::{self, StreamSource};
use serde_json::{Value, json};
use shared::notify::{Links, Mailer, SmtpConfig};
use shared::scheduler;
use shared::users::{self, NewUser};
use tokio::task::JoinHandle;

const MEMBER_ROLE: &str = "9c9547bad0d742adafd4d54ef992e605";

struct World {
    api: TestApi,
    project_url: String,
    owner_token: String,
}

fn mailer(maildev: &MailDev) -> Mailer {
    Mailer::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: maildev.smtp_port,
        sender: "Waldur <noreply@example.com>".into(),
        credentials: None,
    })
    .expect("mailer")
}

fn links() -> Links {
    Links {
        homeport: "https://homeport.example".into(),
    }
}

impl World {
    /// A customer with a project: owners olga (reads German) and nomail (no address), the
    /// project's manager max (prefers French, which has no templates) and member mia.
    async fn new() -> Self {
        let api = TestApi::new().await;
        let (customer, project) = api.customer_with_project("Peer Org", "Peer Project").await;
        let customer_path = format!("/api/customers/{}/", customer["uuid"].as_str().unwrap());
        let project_path = format!("/api/projects/{}/", project["uuid"].as_str().unwrap());
        let (olga, owner_token) = api.user("olga", false, false).await;
        let set_language = api
            .call(
                "PATCH",
                &format!("/api/users/{}/", olga.uuid),
                Some(&api.admin_token),
                Some(json!({"preferred_language": "de"})),
            )
            .await;
        assert_eq!(set_language.status, 200, "{}", set_language.text);
        assert_eq!(set_language.json["preferred_language"], "de");
        api.grant(&customer_path, &olga.uuid, "CUSTOMER.OWNER").await;
        let nomail = users::create(
            api.store(),
            None,
            NewUser {
                username: "nomail".into(),
                ..NewUser::default()
            },
            &shared::time::now(),
        )
        .await
        .unwrap();
        api.grant(&customer_path, &nomail.uuid, "CUSTOMER.OWNER").await;
        let (max, _) = api.user("max", false, false).await;
        // No French templates: max reads English.
        let french = api
            .call(
                "PATCH",
                &format!("/api/users/{}/", max.uuid),
                Some(&api.admin_token),
                Some(json!({"preferred_language": "fr"})),
            )
            .await;
        assert_eq!(french.status, 200, "{}", french.text);
        api.grant(&project_path, &max.uuid, "PROJECT.MANAGER").await;
        let (mia, _) = api.user("mia", false, false).await;
        api.grant(&project_path, &mia.uuid, "PROJECT.MEMBER").await;
        World {
            project_url: project["url"].as_str().unwrap().to_owned(),
            owner_token,
            api,
        }
    }

    /// A new user asks for a role in the project; the request's uuid.
    async fn request(&self, username: &str) -> String {
        let invitation = self
            .api
            .call(
                "POST",
                "/api/user-group-invitations/",
                Some(&self.owner_token),
                Some(json!({"scope": self.project_url, "role": MEMBER_ROLE})),
            )
            .await;
        assert_eq!(invitation.status, 201, "{}", invitation.text);
        let (_, token) = self.api.user(username, false, false).await;
        let path = format!(
            "/api/user-group-invitations/{}/submit_request/",
            invitation.json["uuid"].as_str().unwrap()
        );
        let submitted = self.api.call("POST", &path, Some(&token), Some(json!({}))).await;
        assert_eq!(submitted.status, 200, "{}", submitted.text);
        submitted.json["uuid"].as_str().unwrap().to_owned()
    }

    async fn outbox(&self) -> Vec<Value> {
        let mut items: Vec<Value> = self
            .api
            .all_items()
            .await
            .into_iter()
            .filter(|i| i["entity"] == "outbox")
            .collect();
        items.sort_by(|a, b| a["SK"].as_str().cmp(&b["SK"].as_str()));
        items
    }

    /// The INSERT records of the outbox items not yet delivered, in order, as the stream
    /// gives them (the sequence number is the item's SK, which orders them too).
    async fn pending_records(&self) -> Vec<EventRecord> {
        self.outbox()
            .await
            .iter()
            .filter(|i| i.get("sent_at").is_none())
            .map(record)
            .collect()
    }

    /// What `make dev` runs: the local runner's reader of this table's stream, with the
    /// template's event source, feeding the notifier's handler.
    fn stream_reader(
        &self,
        mailer: Arc<Mailer>,
    ) -> JoinHandle<Result<(), Box<dyn std::error::Error + Send + Sync>>> {
        let template =
            std::fs::read_to_string(integration_tests::workspace_root().join("template.yaml")).unwrap();
        let source = StreamSource::from_template(&template).unwrap().remove(0);
        let streams_client = aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::Config::builder()
                .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new(
                    "dummy", "dummy", None, None, "tests",
                ))
                .endpoint_url(integration_tests::dynamodb_endpoint())
                .build(),
        );
        let store = self.api.store().clone();
        let (dynamodb, table) = (store.client().clone(), store.table().to_owned());
        tokio::spawn(streams::run(
            source,
            dynamodb,
            streams_client,
            table,
            move |event| {
                let (store, mailer) = (store.clone(), mailer.clone());
                async move { notifier_function::handle(&store, &mailer, &links(), &event).await }
            },
        ))
    }

    /// Delivers every outbox item not yet sent, as one batch, and expects no failure.
    async fn deliver_pending(&self, mailer: &Mailer) {
        let answer = self.deliver(mailer, self.pending_records().await).await;
        assert_eq!(answer, BatchResponse::default());
    }

    /// The owner decides a request (`approve` or `reject`) with a comment.
    async fn decide(&self, request: &str, decision: &str, comment: &str) {
        let answer = self
            .api
            .call(
                "POST",
                &format!("/api/user-permission-requests/{request}/{decision}/"),
                Some(&self.owner_token),
                Some(json!({ "comment": comment })),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }

    async fn deliver(&self, mailer: &Mailer, records: Vec<EventRecord>) -> BatchResponse {
        let mut event = Event::default();
        event.records = records;
        notifier_function::handle(self.api.store(), mailer, &links(), &event).await
    }
}

/// The record as Lambda would send it (the sequence number is the item's SK, in order too).
fn record(item: &Value) -> EventRecord {
    serde_json::from_value(json!({
        "awsRegion": "us-east-1",
        "eventID": item["SK"],
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"PK": {"S": item["PK"]}, "SK": {"S": item["SK"]}},
            "SequenceNumber": item["SK"],
            "SizeBytes": 100,
            "StreamViewType": "KEYS_ONLY",
        },
    }))
    .expect("a DynamoDB stream record")
}

fn addresses(mails: &[Value]) -> BTreeSet<String> {
    mails.iter().flat_map(mail::to).collect()
}

type Reader = JoinHandle<Result<(), Box<dyn std::error::Error + Send + Sync>>>;

/// Waits until MailDev holds `count` mails (or `patience` runs out), and expects the stream
/// reader to be running still.
async fn mails_from_reader(
    maildev: &MailDev,
    reader: &mut Reader,
    count: usize,
    patience: Wait,
) -> Vec<Value> {
    let deadline = Instant::now() + patience;
    let mails = loop {
        let mails = maildev.emails();
        if mails.len() >= count || Instant::now() > deadline || reader.is_finished() {
            break mails;
        }
        tokio::time::sleep(Wait::from_millis(50)).await;
    };
    assert!(
        !reader.is_finished(),
        "the stream reader stopped: {:?}",
        reader.await
    );
    mails
}

fn mail_to<'a>(mails: &'a [Value], address: &str) -> &'a Value {
    let found: Vec<&Value> = mails.iter().filter(|m| mail::to(m) == [address]).collect();
    assert_eq!(found.len(), 1, "mails to {address}: {found:?}");
    found[0]
}

#[tokio::test]
async fn a_request_reaches_its_deciders_and_the_decision_its_requester() {
    let maildev = MailDev::start();
    let mailer = mailer(&maildev);
    let w = World::new().await;
    let request = w.request("rob").await;
    w.deliver_pending(&mailer).await;

    let mails = maildev.emails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(
        addresses(&mails),
        BTreeSet::from(["olga@example.com".to_owned(), "max@example.com".to_owned()])
    );
    let german = mail_to(&mails, "olga@example.com");
    assert_eq!(german["subject"], "Neue Berechtigungsanfrage für Peer Project");
    assert!(
        german["text"]
            .as_str()
            .unwrap()
            .contains("hat eine Rolle in Peer Project beantragt")
    );
    let english = mail_to(&mails, "max@example.com");
    assert_eq!(english["subject"], "A new permission request for Peer Project");
    let link = format!("https://homeport.example/permission-requests/{request}/");
    assert!(
        english["text"]
            .as_str()
            .unwrap()
            .contains("rob Tester (rob) has requested a role")
    );
    assert!(english["text"].as_str().unwrap().contains(&link));
    let html = english["html"].as_str().unwrap();
    assert!(
        html.contains("<a href=\"https:") && html.contains(&request),
        "{html}"
    );
    assert_eq!(english["from"][0]["address"], "noreply@example.com");
    let outbox = w.outbox().await;
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0]["recipient_count"], 2);
    assert_eq!(outbox[0]["skipped_count"], 1, "nomail has no address");
    assert!(outbox[0]["sent_at"].is_string());

    w.decide(&request, "reject", "Not <this> year").await;
    w.deliver_pending(&mailer).await;
    let mails = maildev.emails();
    assert_eq!(mails.len(), 3, "one more mail, to the requester only");
    let decision = &mails[2];
    assert_eq!(mail::to(decision), ["rob@example.com"]);
    assert_eq!(
        decision["subject"],
        "Your permission request for Peer Project has been rejected"
    );
    assert!(
        decision["text"]
            .as_str()
            .unwrap()
            .contains("Comment: Not <this> year")
    );
    assert!(
        decision["html"]
            .as_str()
            .unwrap()
            .contains("Comment: Not &lt;this&gt; year")
    );

    // An approval goes to its requester too, with the comment.
    let approved_request = w.request("ria").await;
    w.deliver_pending(&mailer).await;
    w.decide(&approved_request, "approve", "Welcome").await;
    w.deliver_pending(&mailer).await;
    let mails = maildev.emails();
    assert_eq!(mails.len(), 6, "the request's 2 mails, then 1 to the requester");
    let approval = &mails[5];
    assert_eq!(mail::to(approval), ["ria@example.com"]);
    assert_eq!(
        approval["subject"],
        "Your permission request for Peer Project has been approved"
    );
    assert!(approval["text"].as_str().unwrap().contains("Comment: Welcome"));
}

#[tokio::test]
async fn a_duplicated_stream_record_sends_once() {
    let maildev = MailDev::start();
    let mailer = mailer(&maildev);
    let w = World::new().await;
    w.request("rob").await;
    let records = w.pending_records().await;
    assert_eq!(records.len(), 1);
    let twice = vec![records[0].clone(), records[0].clone()];
    assert_eq!(w.deliver(&mailer, twice).await, BatchResponse::default());
    assert_eq!(w.deliver(&mailer, records).await, BatchResponse::default());
    let mails = maildev.emails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(addresses(&mails).len(), 2);
}

#[tokio::test]
async fn an_smtp_outage_delays_but_loses_nothing() {
    let mut maildev = MailDev::start();
    let (smtp_port, web_port) = (maildev.smtp_port, maildev.web_port);
    let mailer = mailer(&maildev);
    let w = World::new().await;
    let mut requests = Vec::new();
    for name in ["rob", "ria", "ray"] {
        requests.push(w.request(name).await);
    }
    let records = w.pending_records().await;
    assert_eq!(records.len(), 3);
    assert_eq!(
        w.deliver(&mailer, records[..1].to_vec()).await,
        BatchResponse::default()
    );
    let before = maildev.emails();
    assert_eq!(before.len(), 2);

    maildev.stop();
    let failed = w.deliver(&mailer, records.clone()).await;
    assert_eq!(failed.batch_item_failures.len(), 1);
    assert_eq!(
        failed.batch_item_failures[0].item_identifier, records[1].change.sequence_number,
        "the first record is done; the mapping retries from the second"
    );
    let outbox = w.outbox().await;
    assert!(outbox[0]["sent_at"].is_string());
    assert!(outbox[1]["sent_at"].is_null());
    assert!(
        outbox[1]["last_error"].as_str().unwrap().starts_with("SMTP:"),
        "{}",
        outbox[1]
    );
    assert_eq!(outbox[1]["attempts"], 1);

    let maildev = MailDev::start_on(smtp_port, web_port);
    assert_eq!(
        w.deliver(&mailer, records[1..].to_vec()).await,
        BatchResponse::default()
    );
    // A late duplicate of the whole batch changes nothing.
    assert_eq!(
        w.deliver(&mailer, records.clone()).await,
        BatchResponse::default()
    );
    let after = maildev.emails();
    assert_eq!(after.len(), 4, "{after:?}");
    let mut delivered = BTreeSet::new();
    for mail in before.iter().chain(&after) {
        let text = mail["text"].as_str().unwrap();
        let request = requests
            .iter()
            .find(|r| text.contains(r.as_str()))
            .expect("a request's link");
        for to in mail::to(mail) {
            assert!(delivered.insert((to, request.clone())), "sent twice: {mail}");
        }
    }
    assert_eq!(delivered.len(), 6, "three requests, two deciders each");
    let outbox = w.outbox().await;
    assert!(
        outbox
            .iter()
            .all(|i| i["sent_at"].is_string() && i.get("last_error").is_none())
    );
}

#[tokio::test]
async fn a_grant_about_to_expire_is_announced_once_to_its_holder_and_managers() {
    let maildev = MailDev::start();
    let mailer = mailer(&maildev);
    let w = World::new().await;
    let now = shared::time::now();
    let (rob, _) = w.api.user("rob", false, false).await;
    let (ria, _) = w.api.user("ria", false, false).await;
    let project = w.project_url.split("/api/").nth(1).unwrap();
    for (user, days) in [(&rob, 3), (&ria, 30)] {
        let expires = shared::time::wire(&(now + Duration::days(days)));
        let added = w
            .api
            .call(
                "POST",
                &format!("/api/{project}add_user/"),
                Some(&w.api.admin_token),
                Some(json!({"user": user.uuid, "role": "PROJECT.MEMBER", "expiration_time": expires})),
            )
            .await;
        assert_eq!(added.status, 201, "{}", added.text);
    }
    let warned = scheduler::warn_expiring_grants(w.api.store(), &now)
        .await
        .unwrap();
    assert_eq!(
        warned.expiry_warnings, 1,
        "only rob's grant expires within a week"
    );
    let again = scheduler::warn_expiring_grants(w.api.store(), &(now + Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(again.expiry_warnings, 0, "once");
    w.deliver_pending(&mailer).await;
    let mails = maildev.emails();
    assert_eq!(
        addresses(&mails),
        BTreeSet::from([
            "rob@example.com".to_owned(),
            "olga@example.com".to_owned(),
            "max@example.com".to_owned(),
        ])
    );
    assert_eq!(mails.len(), 3);
    let holder = mail_to(&mails, "rob@example.com");
    assert!(
        holder["subject"]
            .as_str()
            .unwrap()
            .starts_with("A role of rob in Peer Project expires on "),
        "{}",
        holder["subject"]
    );
    assert!(holder["text"].as_str().unwrap().contains("PROJECT.MEMBER"));
    assert!(
        mail_to(&mails, "olga@example.com")["subject"]
            .as_str()
            .unwrap()
            .contains("läuft am")
    );
    let outbox = w.outbox().await;
    assert_eq!(outbox.last().unwrap()["skipped_count"], 1);
}

/// What `make dev` runs: the local runner's reader of the table's real stream (DynamoDB Local's
/// Streams API) feeds the notifier, with the template's filter and batch size, so a request
/// submitted through the API reaches its deciders' inboxes, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_runner_delivers_what_the_table_stream_carries() {
    let maildev = MailDev::start();
    let mailer = Arc::new(mailer(&maildev));
    let w = World::new().await;
    let mut reader = w.stream_reader(mailer.clone());

    let submitted = Instant::now();
    let request = w.request("rob").await;
    let mails = mails_from_reader(&maildev, &mut reader, 2, Wait::from_secs(30)).await;
    eprintln!(
        "request submitted to both mails received: {:?}",
        submitted.elapsed()
    );
    assert_eq!(
        addresses(&mails),
        BTreeSet::from(["olga@example.com".to_owned(), "max@example.com".to_owned()])
    );
    assert!(
        mails
            .iter()
            .all(|m| m["text"].as_str().unwrap().contains(&request))
    );
    // The reader goes on polling; nothing more arrives for the same record.
    tokio::time::sleep(Wait::from_secs(1)).await;
    assert_eq!(maildev.emails().len(), 2);
    assert!(w.outbox().await.iter().all(|i| i["sent_at"].is_string()));
    reader.abort();
}

/// A review opened by the scheduler, and each reminder, go to the customer's owners (a project's
/// review too) with the link to the review and the number of its grants still to decide.
#[tokio::test]
async fn a_review_and_its_reminders_reach_the_customer_owners() {
    use shared::reviews::Schedule;

    let maildev = MailDev::start();
    let mailer = mailer(&maildev);
    let w = World::new().await;
    let now = shared::time::now();
    let schedule = Schedule::default();
    let opened = scheduler::open_due_reviews(w.api.store(), &schedule, &now)
        .await
        .unwrap();
    assert_eq!(
        opened.reviews_opened, 2,
        "the customer's review and the project's: {opened:?}"
    );
    w.deliver_pending(&mailer).await;
    let reviews: Vec<Value> = w
        .api
        .all_items()
        .await
        .into_iter()
        .filter(|i| i["entity"] == "permission_review")
        .collect();
    assert_eq!(reviews.len(), 2);
    let mails = maildev.emails();
    // olga is the one owner with an address; the project's manager max hears nothing.
    assert_eq!(addresses(&mails), BTreeSet::from(["olga@example.com".to_owned()]));
    assert_eq!(mails.len(), 2, "{mails:?}");
    let subjects: BTreeSet<&str> = mails.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(
        subjects,
        BTreeSet::from([
            "Bitte überprüfen Sie die Berechtigungen von Peer Org",
            "Bitte überprüfen Sie die Berechtigungen von Peer Project",
        ])
    );
    // The customer's review covers its owners and the project's two members; the project's
    // review the project's two.
    for (scope, grants) in [("Peer Org", 4), ("Peer Project", 2)] {
        let mail = mails
            .iter()
            .find(|m| m["subject"].as_str().unwrap().ends_with(scope))
            .unwrap();
        let text = mail["text"].as_str().unwrap();
        assert!(
            text.contains(&format!("{grants} Berechtigung(en) zu prüfen")),
            "{text}"
        );
        let review = reviews
            .iter()
            .find(|r| text.contains(r["uuid"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("no review link in {text}"));
        assert!(text.contains(&format!(
            "https://homeport.example/reviews/{}/",
            review["uuid"].as_str().unwrap()
        )));
    }

    let early = scheduler::send_reminders(w.api.store(), &schedule, &(now + Duration::days(6)))
        .await
        .unwrap();
    assert_eq!(early.reminders_sent, 0, "not before the reminder interval");
    let later = now + Duration::days(8);
    let reminded = scheduler::send_reminders(w.api.store(), &schedule, &later)
        .await
        .unwrap();
    assert_eq!(reminded.reminders_sent, 2);
    let again = scheduler::send_reminders(w.api.store(), &schedule, &(later + Duration::days(1)))
        .await
        .unwrap();
    assert_eq!(again.reminders_sent, 0, "once per interval");
    w.deliver_pending(&mailer).await;
    let mails = maildev.emails();
    assert_eq!(mails.len(), 4, "{mails:?}");
    for reminder in &mails[2..] {
        assert_eq!(mail::to(reminder), ["olga@example.com"]);
        let subject = reminder["subject"].as_str().unwrap();
        assert!(
            subject.starts_with("Erinnerung: die Berechtigungsprüfung von Peer "),
            "{subject}"
        );
    }
}

/// The SMTP server is down while three requests are submitted: the local runner's reader gets
/// the failed record back (partial batch response), retries with backoff, and once the server
/// is back every decider has each request's mail exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_under_the_stream_reader_delays_but_loses_nothing() {
    let mut maildev = MailDev::start();
    let (smtp_port, web_port) = (maildev.smtp_port, maildev.web_port);
    let mailer = Arc::new(mailer(&maildev));
    let w = World::new().await;
    maildev.stop();
    let mut reader = w.stream_reader(mailer.clone());
    let mut requests = Vec::new();
    for name in ["rob", "ria", "ray"] {
        requests.push(w.request(name).await);
    }
    // Long enough for the reader to have tried and failed (it polls four times a second).
    tokio::time::sleep(Wait::from_secs(2)).await;
    let outbox = w.outbox().await;
    assert!(outbox.iter().all(|i| i["sent_at"].is_null()));
    assert!(outbox[0]["attempts"].as_i64() >= Some(1), "{}", outbox[0]);

    let maildev = MailDev::start_on(smtp_port, web_port);
    let mails = mails_from_reader(&maildev, &mut reader, 6, Wait::from_secs(60)).await;
    let mut delivered = BTreeSet::new();
    for mail in &mails {
        let text = mail["text"].as_str().unwrap();
        let request = requests
            .iter()
            .find(|r| text.contains(r.as_str()))
            .expect("a request's link");
        for to in mail::to(mail) {
            assert!(delivered.insert((to, request.clone())), "sent twice: {mail}");
        }
    }
    assert_eq!(delivered.len(), 6, "three requests, two deciders each: {mails:?}");
    tokio::time::sleep(Wait::from_secs(1)).await;
    assert_eq!(maildev.emails().len(), 6, "nothing more");
    assert!(w.outbox().await.iter().all(|i| i["sent_at"].is_string()));
    reader.abort();
}
