"""simple-salesforce's Bulk API 2.0 ingest (insert, upsert, delete), used unmodified, against sfsim."""
import csv
import io

import pytest
from simple_salesforce import Salesforce


def connect(sim):
    token = sim.token()
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], version="62.0")


@pytest.fixture(scope="module")
def sf(sim):
    before = sim.control("GET", "settings")
    sim.control("PATCH", "settings", {"bulk_job_processing_ms": 100})
    yield connect(sim)
    # Back to the seeded org, so the records made here do not show in other tests.
    sim.control("POST", "reset")
    sim.control("PATCH", "settings", {"bulk_job_processing_ms": before["bulk_job_processing_ms"]})


def rows(text):
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_insert_reports_every_record(sf):
    records = [
        {"LastName": "IngestPy One", "Email": "one@ingest-py.example", "Title": 'says "hi", twice'},
        {"LastName": "", "Email": "nolast@ingest-py.example", "Title": "no name"},
        {"LastName": "IngestPy Two", "Email": "two@ingest-py.example", "Title": "line\nbreak"},
    ]
    [result] = sf.bulk2.Contact.insert(records=records, wait=0.05)
    assert result["numberRecordsProcessed"] == 3
    assert result["numberRecordsFailed"] == 1
    assert result["numberRecordsTotal"] == 3
    ok = rows(sf.bulk2.Contact.get_successful_records(result["job_id"]))
    assert sorted(r["LastName"] for r in ok) == ["IngestPy One", "IngestPy Two"]
    assert all(r["sf__Created"] == "true" and r["sf__Id"].startswith("003") for r in ok)
    assert {r["Title"] for r in ok} == {'says "hi", twice', "line\nbreak"}, "cells come back as uploaded"
    [failed] = rows(sf.bulk2.Contact.get_failed_records(result["job_id"]))
    assert failed["sf__Error"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
    assert failed["sf__Id"] == ""
    assert failed["Email"] == "nolast@ingest-py.example"
    assert rows(sf.bulk2.Contact.get_unprocessed_records(result["job_id"])) == []
    found = sf.query("SELECT Id, Title FROM Contact WHERE LastName LIKE 'IngestPy%'")
    assert found["totalSize"] == 2
    assert {r["Id"] for r in found["records"]} == {r["sf__Id"] for r in ok}


def test_upsert_by_external_id_creates_then_updates(sf):
    first = [{"User_Id__c": "PY-1", "LastName": "Upsert One"}, {"User_Id__c": "PY-2", "LastName": "Upsert Two"}]
    [created] = sf.bulk2.Contact.upsert(records=first, external_id_field="User_Id__c", wait=0.05)
    assert created["numberRecordsFailed"] == 0
    again = [{"User_Id__c": "PY-1", "LastName": "Upsert Renamed"}, {"User_Id__c": "PY-3", "LastName": "Upsert Three"},
             {"User_Id__c": "PY-4", "LastName": ""}]
    [result] = sf.bulk2.Contact.upsert(records=again, external_id_field="User_Id__c", wait=0.05)
    assert result["numberRecordsProcessed"] == 3
    assert result["numberRecordsFailed"] == 1
    ok = {r["User_Id__c"]: r for r in rows(sf.bulk2.Contact.get_successful_records(result["job_id"]))}
    assert ok["PY-1"]["sf__Created"] == "false"
    assert ok["PY-3"]["sf__Created"] == "true"
    [failed] = rows(sf.bulk2.Contact.get_failed_records(result["job_id"]))
    assert failed["User_Id__c"] == "PY-4"
    assert failed["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    names = sf.query("SELECT LastName FROM Contact WHERE User_Id__c LIKE 'PY-%' ORDER BY User_Id__c")["records"]
    assert [r["LastName"] for r in names] == ["Upsert Renamed", "Upsert Two", "Upsert Three"]


def test_delete_moves_records_to_the_recycle_bin(sf):
    ids = [sf.Account.create({"Name": f"IngestPy Delete {i}"})["id"] for i in range(2)]
    unknown = "0015g0000zzzzzzAAA"
    records = [{"Id": i} for i in ids] + [{"Id": unknown}]
    [result] = sf.bulk2.Account.delete(records=records, wait=0.05)
    assert result["numberRecordsProcessed"] == 3
    assert result["numberRecordsFailed"] == 1
    ok = rows(sf.bulk2.Account.get_successful_records(result["job_id"]))
    assert sorted(r["sf__Id"] for r in ok) == sorted(ids)
    assert all(r["sf__Created"] == "false" for r in ok)
    [failed] = rows(sf.bulk2.Account.get_failed_records(result["job_id"]))
    assert failed == {"sf__Id": unknown, "sf__Error": "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--",
                      "Id": unknown}
    gone = sf.query_all("SELECT Id, IsDeleted FROM Account WHERE Name LIKE 'IngestPy Delete%'", include_deleted=True)
    assert gone["totalSize"] == 2
    assert all(r["IsDeleted"] for r in gone["records"])
