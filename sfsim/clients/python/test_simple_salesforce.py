"""simple-salesforce, used unmodified as its users use it, against sfsim."""
import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (SalesforceExpiredSession, SalesforceMalformedRequest,
                                          SalesforceResourceNotFound)


def connect(sim):
    token = sim.token()
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], version="62.0")


def test_query_follows_next_records_url(sim):
    sf = connect(sim)
    first = sf.query("SELECT Id, Name FROM Contact ORDER BY Id")
    assert first["totalSize"] == 4500
    assert first["done"] is False and len(first["records"]) == 2000
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 2000
    assert second["records"][0]["Id"] > first["records"][-1]["Id"]


def test_query_all_reads_every_page(sim):
    sf = connect(sim)
    rows = sf.query_all("SELECT Id, Email FROM Contact")["records"]
    assert len(rows) == 4500
    assert len({r["Id"] for r in rows}) == 4500
    assert sum(1 for _ in sf.query_all_iter("SELECT Id FROM Account")) == 40


def test_query_all_with_deleted_uses_query_all(sim):
    sf = connect(sim)
    lead = sf.query("SELECT Id FROM Lead LIMIT 1")["records"][0]["Id"]
    sf.Lead.delete(lead)
    soql = f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{lead}'"
    assert sf.query_all(soql)["totalSize"] == 0
    deleted = sf.query_all(soql, include_deleted=True)["records"]
    assert deleted[0]["IsDeleted"] is True


def test_describe(sim):
    sf = connect(sim)
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Account", "Contact", "Lead", "Opportunity", "User", "Case", "Task", "Invoice__c"} <= names
    fields = {f["name"]: f for f in sf.Contact.describe()["fields"]}
    assert fields["User_Id__c"]["externalId"] is True
    assert fields["Languages__c"]["type"] == "multipicklist"


def test_crud(sim):
    sf = connect(sim)
    created = sf.Contact.create({"LastName": "Py", "FirstName": "Simple", "Email": "simple.py@example.net"})
    assert created["success"] is True and created["errors"] == []
    contact = sf.Contact.get(created["id"])
    assert contact["Name"] == "Simple Py"
    assert sf.Contact.update(created["id"], {"Title": "Tester"}) == 204
    assert sf.Contact.get(created["id"])["Title"] == "Tester"
    assert sf.Contact.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(created["id"])


def test_upsert_and_get_by_external_id(sim):
    sf = connect(sim)
    assert sf.Contact.upsert("User_Id__c/py-user-1", {"LastName": "Upsert"}) == 201
    assert sf.Contact.upsert("User_Id__c/py-user-1", {"Title": "Updated"}) == 200
    assert sf.Contact.get_by_custom_id("User_Id__c", "py-user-1")["Title"] == "Updated"


def test_limits_and_usage_header(sim):
    sf = connect(sim)
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 15000
    sf.query("SELECT COUNT() FROM Account")
    usage = sf.api_usage["api-usage"]
    assert usage.total == 15000 and 0 < usage.used <= 15000


def test_errors_raise_the_client_exceptions(sim):
    sf = connect(sim)
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query("SELECT * FROM Contact")
    assert bad.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    sim.control("POST", "tokens/expire")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account LIMIT 1")
