//! Formula fields are computed when read, so their values change without
//! their records' SystemModstamp moving: Contact.Account_Name__c follows its
//! Account's Name, Invoice__c.Days_Outstanding__c follows sfsim's clock.

mod common;

use common::{error_code, Org, V};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn field<'d>(describe: &'d Value, name: &str) -> &'d Value {
    describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no field {name}"))
}

/// An Account with at least two Contacts, and those Contacts' ids.
fn account_with_contacts(org: &Org) -> (String, String, Vec<String>) {
    let groups = org.records(
        "SELECT AccountId, COUNT(Id) n FROM Contact WHERE AccountId != null GROUP BY AccountId HAVING COUNT(Id) >= 2 ORDER BY AccountId LIMIT 1",
    );
    let account = groups[0]["AccountId"].as_str().unwrap().to_string();
    let name = org.records(&format!("SELECT Name FROM Account WHERE Id = '{account}'"))[0]["Name"]
        .as_str()
        .unwrap()
        .to_string();
    let contacts = org
        .records(&format!(
            "SELECT Id FROM Contact WHERE AccountId = '{account}' ORDER BY Id"
        ))
        .iter()
        .map(|c| c["Id"].as_str().unwrap().to_string())
        .collect();
    (account, name, contacts)
}

#[test]
fn renaming_an_account_changes_its_contacts_account_name_without_touching_them() {
    let org = Org::demo();
    let (account, name, contacts) = account_with_contacts(&org);
    let soql = format!(
        "SELECT Id, Account_Name__c, SystemModstamp FROM Contact WHERE AccountId = '{account}' ORDER BY Id"
    );
    let before = org.records(&soql);
    assert!(before.iter().all(|c| c["Account_Name__c"] == name.as_str()));
    let r = org.send(
        Method::PATCH,
        &format!("{V}/sobjects/Account/{account}"),
        json!({"Name": "Renamed Holdings"}),
    );
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let after = org.records(&soql);
    assert_eq!(after.len(), contacts.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a["Account_Name__c"], "Renamed Holdings");
        assert_eq!(
            a["SystemModstamp"], b["SystemModstamp"],
            "the Contact did not change"
        );
    }

    let filtered = org
        .records("SELECT Id FROM Contact WHERE Account_Name__c = 'renamed holdings' ORDER BY Id");
    assert_eq!(
        filtered.len(),
        contacts.len(),
        "WHERE compares ignoring case"
    );
    let by_formula = org.records(
        "SELECT Account_Name__c FROM Contact WHERE AccountId != null ORDER BY Account_Name__c DESC, Id LIMIT 30",
    );
    let by_parent = org.records(
        "SELECT Account.Name FROM Contact WHERE AccountId != null ORDER BY Account.Name DESC, Id LIMIT 30",
    );
    let names = |rows: &[Value], get: fn(&Value) -> &Value| -> Vec<Value> {
        rows.iter().map(|r| get(r).clone()).collect()
    };
    assert_eq!(
        names(&by_formula, |r| &r["Account_Name__c"]),
        names(&by_parent, |r| &r["Account"]["Name"]),
        "ORDER BY sorts on the formula's value"
    );
    let orphan = org.records("SELECT Account_Name__c FROM Contact WHERE AccountId = null LIMIT 1");
    assert_eq!(orphan[0]["Account_Name__c"], Value::Null);

    let one: Value = org
        .get(&format!("{V}/sobjects/Contact/{}", contacts[0]))
        .json()
        .unwrap();
    assert_eq!(one["Account_Name__c"], "Renamed Holdings");
    let retrieved: Value = org
        .get(&format!(
            "{V}/composite/sobjects/Contact?ids={}&fields=Id,Account_Name__c",
            contacts.join(",")
        ))
        .json()
        .unwrap();
    assert!(retrieved
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["Account_Name__c"] == "Renamed Holdings"));
    let csv = org.bulk_csv(&format!(
        "SELECT Id, Account_Name__c FROM Contact WHERE Id = '{}'",
        contacts[0]
    ));
    assert_eq!(
        csv,
        format!(
            "\"Id\",\"Account_Name__c\"\n\"{}\",\"Renamed Holdings\"\n",
            contacts[0]
        )
    );
}

#[test]
fn account_name_is_described_as_a_read_only_formula() {
    let org = Org::demo();
    let d: Value = org
        .get(&format!("{V}/sobjects/Contact/describe"))
        .json()
        .unwrap();
    let f = field(&d, "Account_Name__c");
    for (flag, want) in [
        ("calculated", json!(true)),
        ("calculatedFormula", json!("Account.Name")),
        ("createable", json!(false)),
        ("updateable", json!(false)),
        ("filterable", json!(true)),
        ("sortable", json!(true)),
        ("custom", json!(true)),
        ("type", json!("string")),
    ] {
        assert_eq!(f[flag], want, "{flag}");
    }
    let contact = org.records("SELECT Id FROM Contact LIMIT 1")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = org.send(
        Method::PATCH,
        &format!("{V}/sobjects/Contact/{contact}"),
        json!({"Account_Name__c": "Mine"}),
    );
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        error_code(&r.json().unwrap()),
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    let invoice: Value = org
        .get(&format!("{V}/sobjects/Invoice__c/describe"))
        .json()
        .unwrap();
    let days = field(&invoice, "Days_Outstanding__c");
    assert_eq!(days["calculatedFormula"], "TODAY() - Issued_On__c");
    assert_eq!(
        (days["type"].as_str(), days["scale"].as_u64()),
        (Some("double"), Some(0))
    );
    assert_eq!(
        field(&invoice, "Total__c")["calculatedFormula"],
        "Amount__c * (1 + Tax_Rate__c)"
    );
    assert_eq!(
        field(&d, "Name")["calculatedFormula"],
        Value::Null,
        "standard computed fields show no formula"
    );
}

#[test]
fn days_outstanding_follows_the_clock_without_touching_the_invoice() {
    let org = Org::demo();
    let soql =
        "SELECT Id, Issued_On__c, Days_Outstanding__c, SystemModstamp FROM Invoice__c WHERE Issued_On__c != null ORDER BY Id LIMIT 5";
    let before = org.records(soql);
    let today = chrono::Utc::now().date_naive();
    for invoice in &before {
        let issued = chrono::NaiveDate::parse_from_str(
            invoice["Issued_On__c"].as_str().unwrap(),
            "%Y-%m-%d",
        )
        .unwrap();
        let days = invoice["Days_Outstanding__c"].as_f64().unwrap();
        // The test may straddle midnight.
        let expected = (today - issued).num_days() as f64;
        assert!(days == expected || days == expected + 1.0, "{invoice}");
    }
    org.advance_clock(3 * 86_400);
    let after = org.records(soql);
    for (b, a) in before.iter().zip(&after) {
        let moved =
            a["Days_Outstanding__c"].as_f64().unwrap() - b["Days_Outstanding__c"].as_f64().unwrap();
        assert!((3.0..=4.0).contains(&moved), "{b} then {a}");
        assert_eq!(a["SystemModstamp"], b["SystemModstamp"]);
    }

    let first = &after[0];
    let days = first["Days_Outstanding__c"].as_f64().unwrap();
    let id = first["Id"].as_str().unwrap();
    let matched = org.records(&format!(
        "SELECT Id FROM Invoice__c WHERE Id = '{id}' AND Days_Outstanding__c >= {days}"
    ));
    assert_eq!(matched.len(), 1, "WHERE reads the formula");
    let one: Value = org
        .get(&format!(
            "{V}/sobjects/Invoice__c/{id}?fields=Days_Outstanding__c"
        ))
        .json()
        .unwrap();
    assert_eq!(one["Days_Outstanding__c"].as_f64(), Some(days));
    let csv = org.bulk_csv(&format!(
        "SELECT Days_Outstanding__c FROM Invoice__c WHERE Id = '{id}'"
    ));
    assert_eq!(csv, format!("\"Days_Outstanding__c\"\n\"{days}\"\n"));
    let none = org.control(Method::POST, "records/Invoice__c", json!({"Amount__c": 10}));
    let undated: Value = org
        .get(&format!(
            "{V}/sobjects/Invoice__c/{}?fields=Days_Outstanding__c",
            none["id"].as_str().unwrap()
        ))
        .json()
        .unwrap();
    assert_eq!(undated["Days_Outstanding__c"], Value::Null);
}
