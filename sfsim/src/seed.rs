//! Deterministic seed data: the same seed and counts always give the same org.

use crate::access::{FieldAccess, Login};
use crate::org::Org;
use crate::value::Value;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use std::collections::{BTreeMap, HashMap};

pub const ADMIN_USERNAME: &str = "admin@sfsim.example";
/// The domain of the first org's usernames.
pub const USERNAME_DOMAIN: &str = "sfsim.example";

/// A username of the seed moved to another domain: same local part.
pub fn in_domain(username: &str, domain: &str) -> String {
    let local = username.split_once('@').map_or(username, |(l, _)| l);
    format!("{local}@{domain}")
}

/// Records per object for a named seed; `--records` overrides entries.
pub fn plan(seed: &str) -> Result<BTreeMap<String, usize>, String> {
    let counts: &[(&str, usize)] = match seed {
        "demo" => &[
            ("User", 5),
            ("Account", 40),
            ("Contact", 400),
            ("Lead", 300),
            ("Opportunity", 120),
            ("Case", 60),
            ("Task", 200),
            ("Invoice__c", 150),
            ("Document", 3),
            ("Campaign", 20),
        ],
        "empty" => &[("User", 1)],
        other => return Err(format!("unknown seed '{other}' (expected demo or empty)")),
    };
    Ok(counts.iter().map(|(o, n)| (o.to_string(), *n)).collect())
}

/// The order objects are generated in, so lookups can point at earlier ones.
const GENERATION_ORDER: &[&str] = &[
    "User",
    "Account",
    "Contact",
    "Lead",
    "Opportunity",
    "Case",
    "Task",
    "Invoice__c",
    "Document",
    "Campaign",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Niklaus",
    "Sophie",
    "Yukihiro",
    "Anita",
    "Guido",
    "Joan",
    "Bjarne",
    "Lynn",
    "Donald",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "McCarthy",
    "Johnson",
    "Wirth",
    "Wilson",
    "Matsumoto",
    "Borg",
    "van Rossum",
    "Clarke",
    "Stroustrup",
    "Conway",
    "Knuth",
    "O'Neil",
    "Müller",
];
const COMPANY: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Cyberdyne",
    "Tyrell",
    "Aperture",
    "Oscorp",
    "Massive Dynamic",
    "Pied Piper",
    "Prestige",
    "Monarch",
    "Duff",
    "Gekko",
];
const SUFFIX: &[&str] = &[
    "Corp",
    "Inc",
    "Ltd",
    "GmbH",
    "Labs",
    "Group",
    "Holdings",
    "Industries",
];
const CITIES: &[(&str, &str, &str, f64, f64)] = &[
    ("San Francisco", "CA", "USA", 37.7749, -122.4194),
    ("New York", "NY", "USA", 40.7128, -74.0060),
    ("Austin", "TX", "USA", 30.2672, -97.7431),
    ("London", "", "United Kingdom", 51.5074, -0.1278),
    ("Berlin", "", "Germany", 52.5200, 13.4050),
    ("Paris", "", "France", 48.8566, 2.3522),
    ("Tokyo", "", "Japan", 35.6762, 139.6503),
    ("São Paulo", "SP", "Brazil", -23.5505, -46.6333),
];
const TITLES: &[&str] = &[
    "CEO",
    "CTO",
    "VP Engineering",
    "Head of Data",
    "Procurement Manager",
    "Software Engineer",
    "Finance Director",
    "Office Manager",
];
const LANGUAGES: &[&str] = &[
    "English",
    "French",
    "German",
    "Spanish",
    "Japanese",
    "Portuguese",
];
const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];

/// Sets fields by name, resolving each name once per object.
struct Builder<'a> {
    def: &'a crate::schema::ObjectDef,
    cache: HashMap<&'static str, usize>,
    values: Vec<Value>,
}

impl<'a> Builder<'a> {
    fn new(def: &'a crate::schema::ObjectDef) -> Self {
        Builder {
            def,
            cache: HashMap::new(),
            values: Vec::new(),
        }
    }

    fn set(&mut self, name: &'static str, v: Value) {
        let def = self.def;
        let i = *self.cache.entry(name).or_insert_with(|| {
            def.field_index(name)
                .unwrap_or_else(|| panic!("seed field {name}"))
        });
        if self.values.len() <= i {
            self.values.resize(i + 1, Value::Null);
        }
        self.values[i] = v;
    }

    fn text(&mut self, name: &'static str, s: impl Into<crate::value::Text>) {
        self.set(name, Value::text(s));
    }

    fn take(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.values)
    }
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

fn date(rng: &mut Rng, from_year: i32, span_days: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(from_year, 1, 1).expect("valid")
        + Duration::days(rng.below(span_days) as i64)
}

fn money(rng: &mut Rng, max: usize) -> Value {
    Value::Number((rng.below(max * 100) as f64) / 100.0)
}

fn user(b: &mut Builder, username: &str, first: &str, last: &str) {
    b.text("Username", username);
    b.text("FirstName", first);
    b.text("LastName", last);
    b.text("Email", username);
    b.text(
        "Alias",
        format!(
            "{}{}",
            &first[..1],
            &last.chars().take(4).collect::<String>()
        )
        .to_lowercase(),
    );
    b.set("IsActive", Value::Bool(true));
    b.text("TimeZoneSidKey", "Europe/London");
}

/// The admin and the data file's users become the org's logins. The declared
/// users come after the generated ones and draw nothing from the generator,
/// so every other seeded record stays as it was.
fn add_logins(org: &mut Org, user_object: usize, domain: &str) {
    let def = org.def(user_object).clone();
    let admin = org.admin_user_id.clone();
    org.logins.push(Login {
        username: in_domain(ADMIN_USERNAME, domain),
        user_id: admin.clone(),
        access: FieldAccess::default(),
        permissions: org.admin_permissions.clone(),
    });
    let mut b = Builder::new(&def);
    for declared in org.declared_users.clone() {
        let username = in_domain(&declared.username, domain);
        user(&mut b, &username, &declared.first_name, &declared.last_name);
        let id = org.insert_seeded(user_object, b.take(), base_time(), &admin);
        org.logins.push(Login {
            username,
            user_id: id,
            access: declared.access,
            permissions: declared.permissions,
        });
    }
}

/// Fills the org from a plan of record counts per object.
pub fn populate(org: &mut Org, counts: &BTreeMap<String, usize>) -> Result<(), String> {
    populate_in_domain(org, counts, USERNAME_DOMAIN)
}

/// Fills the org as `populate` does, its users' usernames (and emails) in
/// `domain`: the same records and ids whatever the domain.
pub fn populate_in_domain(
    org: &mut Org,
    counts: &BTreeMap<String, usize>,
    domain: &str,
) -> Result<(), String> {
    for name in counts.keys() {
        if org.object(name).is_none() {
            return Err(format!("--records names an unknown object '{name}'"));
        }
    }
    let mut rng = Rng(0x5F5F_5EED);
    let mut made: HashMap<&str, Vec<String>> = HashMap::new();
    // The first user is written before any user exists; it becomes its own creator.
    let admin_placeholder = String::new();
    for &name in GENERATION_ORDER {
        let n = counts
            .get(name)
            .copied()
            .unwrap_or(0)
            .max(usize::from(name == "User"));
        let object = org
            .object(name)
            .expect("generated objects are in the schema");
        let def = org.def(object).clone();
        let mut b = Builder::new(&def);
        let mut ids = Vec::with_capacity(n);
        let accounts = made.get("Account").cloned().unwrap_or_default();
        let contacts = made.get("Contact").cloned().unwrap_or_default();
        for i in 0..n {
            let created = base_time() - Duration::seconds(((n - i) as i64) * 31 % (300 * 86_400));
            let first = rng.pick(FIRST);
            let last = rng.pick(LAST);
            let city = CITIES[rng.below(CITIES.len())];
            match name {
                "User" if i == 0 => {
                    user(&mut b, &in_domain(ADMIN_USERNAME, domain), "Ada", "Admin")
                }
                "User" => user(&mut b, &format!("user{i}@{domain}"), first, last),
                "Account" => {
                    let company = COMPANY[i % COMPANY.len()];
                    let suffix = SUFFIX[(i / COMPANY.len()) % SUFFIX.len()];
                    let round = i / (COMPANY.len() * SUFFIX.len());
                    b.text(
                        "Name",
                        if round == 0 {
                            format!("{company} {suffix}")
                        } else {
                            format!("{company} {suffix} {round}")
                        },
                    );
                    b.text(
                        "Type",
                        rng.pick(&[
                            "Prospect",
                            "Customer - Direct",
                            "Customer - Channel",
                            "Technology Partner",
                        ]),
                    );
                    b.text(
                        "Industry",
                        rng.pick(&[
                            "Banking",
                            "Biotechnology",
                            "Energy",
                            "Healthcare",
                            "Manufacturing",
                            "Retail",
                            "Technology",
                        ]),
                    );
                    if rng.chance(70) {
                        b.text("Rating", rng.pick(&["Hot", "Warm", "Cold"]));
                    }
                    b.set(
                        "AnnualRevenue",
                        Value::Number((rng.below(500) * 100_000) as f64),
                    );
                    b.set(
                        "NumberOfEmployees",
                        Value::Int(10 + rng.below(20_000) as i64),
                    );
                    b.text("Phone", format!("+1 415 555 {:04}", rng.below(10_000)));
                    b.text(
                        "Website",
                        format!(
                            "https://www.{}.example",
                            company.to_lowercase().replace(' ', "")
                        ),
                    );
                    b.text(
                        "BillingStreet",
                        format!("{} Market Street", 1 + rng.below(999)),
                    );
                    b.text("BillingCity", city.0);
                    if !city.1.is_empty() {
                        b.text("BillingState", city.1);
                    }
                    b.text("BillingPostalCode", format!("{:05}", rng.below(99_999)));
                    b.text("BillingCountry", city.2);
                    b.set("BillingLatitude", Value::Number(city.3));
                    b.set("BillingLongitude", Value::Number(city.4));
                    if rng.chance(50) {
                        b.text("Description", format!("{company} is a long-standing account.\nRenewal discussed quarterly."));
                    }
                    // Every tenth pair shares a legacy number, as after a merge of two old systems.
                    b.text(
                        "Legacy_Number__c",
                        format!("L-{:05}", if i % 10 == 1 { i - 1 } else { i }),
                    );
                    b.set(
                        "Customer_Since__c",
                        Value::Date(date(&mut rng, 2015, 3_000)),
                    );
                }
                "Contact" => {
                    b.text("FirstName", first);
                    b.text("LastName", last);
                    b.text(
                        "Email",
                        format!(
                            "{}.{}{i}@example.com",
                            first.to_lowercase(),
                            last.to_lowercase().replace([' ', '\''], "")
                        ),
                    );
                    b.text("Phone", format!("+1 212 555 {:04}", rng.below(10_000)));
                    b.text("Title", rng.pick(TITLES));
                    if rng.chance(60) {
                        b.set("Birthdate", Value::Date(date(&mut rng, 1960, 14_000)));
                    }
                    if !accounts.is_empty() && rng.chance(90) {
                        b.text("AccountId", accounts[rng.below(accounts.len())].clone());
                    }
                    b.text("LeadSource", rng.pick(LEAD_SOURCES));
                    b.set("HasOptedOutOfEmail", Value::Bool(rng.chance(10)));
                    b.text("MailingCity", city.0);
                    b.text("MailingCountry", city.2);
                    if i % 2 == 0 {
                        b.text("User_Id__c", format!("u-{i:07}"));
                    }
                    let langs: Vec<&str> = LANGUAGES
                        .iter()
                        .copied()
                        .filter(|_| rng.chance(25))
                        .collect();
                    if !langs.is_empty() {
                        b.text("Languages__c", langs.join(";"));
                    }
                    b.text("Level__c", rng.pick(&["Primary", "Secondary", "Tertiary"]));
                    if rng.chance(30) {
                        b.set(
                            "Preferred_Call_Time__c",
                            Value::Time(
                                NaiveTime::from_hms_opt(
                                    8 + rng.below(10) as u32,
                                    30 * rng.below(2) as u32,
                                    0,
                                )
                                .expect("valid"),
                            ),
                        );
                    }
                    b.set("Lifetime_Value__c", money(&mut rng, 50_000));
                }
                "Lead" => {
                    b.text("FirstName", first);
                    b.text("LastName", last);
                    b.text(
                        "Company",
                        format!("{} {}", rng.pick(COMPANY), rng.pick(SUFFIX)),
                    );
                    b.text(
                        "Email",
                        format!(
                            "{}.{}.lead{i}@example.org",
                            first.to_lowercase(),
                            last.to_lowercase().replace([' ', '\''], "")
                        ),
                    );
                    b.text(
                        "Status",
                        rng.pick(&[
                            "Open - Not Contacted",
                            "Working - Contacted",
                            "Closed - Not Converted",
                        ]),
                    );
                    b.text("LeadSource", rng.pick(LEAD_SOURCES));
                    b.text("Rating", rng.pick(&["Hot", "Warm", "Cold"]));
                    b.set("NumberOfEmployees", Value::Int(1 + rng.below(5_000) as i64));
                }
                "Opportunity" => {
                    let stages = [
                        ("Prospecting", 10),
                        ("Qualification", 20),
                        ("Needs Analysis", 30),
                        ("Proposal/Price Quote", 60),
                        ("Negotiation/Review", 80),
                        ("Closed Won", 100),
                        ("Closed Lost", 0),
                    ];
                    let (stage, probability) = stages[rng.below(stages.len())];
                    b.text(
                        "Name",
                        format!(
                            "{} - {}",
                            rng.pick(COMPANY),
                            rng.pick(&["Platform", "Renewal", "Expansion", "Pilot"])
                        ),
                    );
                    if !accounts.is_empty() {
                        b.text("AccountId", accounts[rng.below(accounts.len())].clone());
                    }
                    b.text("StageName", stage);
                    b.set("Probability", Value::Number(probability as f64));
                    b.set("Amount", Value::Number((rng.below(200) * 1_000) as f64));
                    b.set("CloseDate", Value::Date(date(&mut rng, 2026, 365)));
                    b.text(
                        "Type",
                        rng.pick(&["Existing Customer - Upgrade", "New Customer"]),
                    );
                }
                "Case" => {
                    if !accounts.is_empty() {
                        b.text("AccountId", accounts[rng.below(accounts.len())].clone());
                    }
                    if !contacts.is_empty() {
                        b.text("ContactId", contacts[rng.below(contacts.len())].clone());
                    }
                    b.text(
                        "Subject",
                        rng.pick(&[
                            "Cannot log in",
                            "Invoice question",
                            "Feature request",
                            "Data export fails",
                        ]),
                    );
                    let status = rng.pick(&["New", "Working", "Escalated", "Closed"]);
                    b.text("Status", status);
                    b.text("Priority", rng.pick(&["High", "Medium", "Low"]));
                    b.text("Origin", rng.pick(&["Phone", "Email", "Web"]));
                    if status == "Closed" {
                        b.set(
                            "ClosedDate",
                            Value::DateTime(created + Duration::hours(1 + rng.below(72) as i64)),
                        );
                    }
                }
                "Task" => {
                    b.text(
                        "Subject",
                        rng.pick(&["Call", "Send Letter", "Send Quote", "Follow up on renewal"]),
                    );
                    if !contacts.is_empty() {
                        b.text("WhoId", contacts[rng.below(contacts.len())].clone());
                    }
                    if !accounts.is_empty() {
                        b.text("WhatId", accounts[rng.below(accounts.len())].clone());
                    }
                    b.set("ActivityDate", Value::Date(date(&mut rng, 2026, 365)));
                    b.text(
                        "Status",
                        rng.pick(&["Not Started", "In Progress", "Completed"]),
                    );
                    b.text("Priority", rng.pick(&["High", "Normal", "Low"]));
                    let reminder = rng.chance(30);
                    b.set("IsReminderSet", Value::Bool(reminder));
                    if reminder {
                        b.set(
                            "ReminderDateTime",
                            Value::DateTime(created + Duration::days(2)),
                        );
                    }
                    b.set("CallDurationInSeconds", Value::Int(rng.below(3_600) as i64));
                }
                "Invoice__c" => {
                    if !accounts.is_empty() {
                        b.text("Account__c", accounts[rng.below(accounts.len())].clone());
                    }
                    b.set("Amount__c", money(&mut rng, 20_000));
                    b.set(
                        "Tax_Rate__c",
                        Value::Number([0.0, 7.5, 19.0, 20.0][rng.below(4)]),
                    );
                    b.set("Issued_On__c", Value::Date(date(&mut rng, 2025, 365)));
                    let paid = rng.chance(60);
                    b.set("Paid__c", Value::Bool(paid));
                    if paid {
                        b.set(
                            "Paid_At__c",
                            Value::DateTime(created + Duration::days(1 + rng.below(40) as i64)),
                        );
                    }
                    b.text(
                        "Status__c",
                        if paid {
                            "Paid"
                        } else {
                            rng.pick(&["Draft", "Sent"])
                        },
                    );
                    if rng.chance(30) {
                        b.text("Notes__c", "Net 30");
                    }
                    b.set("Delivery_Location__Latitude__s", Value::Number(city.3));
                    b.set("Delivery_Location__Longitude__s", Value::Number(city.4));
                }
                "Document" => {
                    use base64::Engine;
                    b.text("Name", format!("Price list {}", i + 1));
                    b.text("ContentType", "text/plain");
                    b.text("Keywords", "pricing");
                    b.text(
                        "Body",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("Price list {} — effective 2026\n", i + 1)),
                    );
                }
                "Campaign" => {
                    let start = date(&mut rng, 2026, 300);
                    b.text(
                        "Name",
                        format!(
                            "{} {}",
                            rng.pick(&["Spring", "Summer", "Autumn", "Winter"]),
                            i + 1
                        ),
                    );
                    b.text(
                        "Type",
                        rng.pick(&["Conference", "Webinar", "Email", "Advertisement"]),
                    );
                    b.text(
                        "Status",
                        rng.pick(&["Planned", "In Progress", "Completed", "Aborted"]),
                    );
                    b.set("StartDate", Value::Date(start));
                    b.set(
                        "EndDate",
                        Value::Date(start + Duration::days(1 + rng.below(60) as i64)),
                    );
                    b.set("BudgetedCost", money(&mut rng, 50_000));
                    b.set("IsActive", Value::Bool(rng.chance(50)));
                }
                _ => unreachable!("every generated object has a generator"),
            }
            let author = made
                .get("User")
                .and_then(|u| u.first())
                .unwrap_or(&admin_placeholder)
                .clone();
            let id = org.insert_seeded(object, b.take(), created, &author);
            if name == "User" && i == 0 {
                org.admin_user_id = id.clone();
            }
            ids.push(id);
        }
        if name == "User" {
            add_logins(org, object, domain);
        }
        made.insert(name, ids);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    fn build(seed: &str) -> Org {
        let mut org = Org::new(Schema::builtin(), Utc::now());
        populate(&mut org, &plan(seed).unwrap()).unwrap();
        org
    }

    #[test]
    fn seeding_is_deterministic() {
        let a = build("demo");
        let b = build("demo");
        for (x, y) in a.objects.iter().zip(&b.objects) {
            let xs: Vec<_> = x.records.values().map(|r| format!("{r:?}")).collect();
            let ys: Vec<_> = y.records.values().map(|r| format!("{r:?}")).collect();
            assert_eq!(xs, ys, "{}", x.def.name);
        }
    }

    #[test]
    fn demo_org_has_believable_sizes() {
        let org = build("demo");
        let count = |n: &str| org.objects[org.object(n).unwrap()].records.len();
        assert_eq!(count("Account"), 40);
        assert_eq!(count("Contact"), 400);
        assert!(count("Lead") >= 100 && count("Invoice__c") >= 100);
        assert!(!org.admin_user_id.is_empty());
    }
}
