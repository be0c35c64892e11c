"""simple-salesforce's Bulk API 2.0 queries, used unmodified, against sfsim."""
import csv
import io
import os

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceOperationError

# Values a CSV writer must quote: every delimiter, quotes, line breaks; and unicode.
TRICKY = [
    {"LastName": 'BulkPy "quoted", with commas', "Title": "semi;colon|pipe^caret`back\ttab",
     "Description": "line one\nline two\r\nline three", "Languages__c": "English;French"},
    {"LastName": "BulkPy Zoë 東京 🚀", "Title": None, "Description": None, "Languages__c": None},
    {"LastName": "BulkPy plain", "Title": "", "Description": "trailing quote\"", "Languages__c": "German"},
]
FIELDS = ["Id", "LastName", "Title", "Description", "Languages__c", "Birthdate", "HasOptedOutOfEmail",
          "SystemModstamp", "Account.Name"]
SOQL = f"SELECT {', '.join(FIELDS)} FROM Contact WHERE LastName LIKE 'BulkPy%' ORDER BY Id"
DELIMITERS = {"COMMA": ",", "SEMICOLON": ";", "TAB": "\t", "PIPE": "|", "CARET": "^", "BACKQUOTE": "`"}
WAIT = 0.05


def connect(sim):
    token = sim.token()
    return Salesforce(instance_url=token["instance_url"], session_id=token["access_token"], version="62.0")


@pytest.fixture(scope="module")
def sf(sim):
    before = sim.control("GET", "settings")
    sim.control("PATCH", "settings", {"bulk_job_processing_ms": 100})
    sf = connect(sim)
    for fields in TRICKY:
        sf.Contact.create({k: v for k, v in fields.items() if v is not None})
    yield sf
    # Back to the seeded org, so the records made here do not show in other tests.
    sim.control("POST", "reset")
    sim.control("PATCH", "settings", {"bulk_job_processing_ms": before["bulk_job_processing_ms"]})


def rows(page, delimiter=","):
    return list(csv.reader(io.StringIO(page, newline=""), delimiter=delimiter))


def rest_text(record, column):
    """A REST query value as Bulk writes it in CSV; '' for null."""
    value = record
    for part in column.split("."):
        value = value[part] if value is not None else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.endswith("+0000"):
        return value[:-5] + "Z"
    return str(value)


def test_query_matches_rest_in_every_delimiter_and_line_ending(sf):
    rest = sf.query_all(SOQL)["records"]
    assert len(rest) == len(TRICKY)
    expected = [FIELDS] + [[rest_text(r, c) for c in FIELDS] for r in rest]
    for name, char in DELIMITERS.items():
        for ending in ("LF", "CRLF"):
            pages = list(sf.bulk2.Contact.query(SOQL, column_delimiter=name, line_ending=ending, wait=WAIT))
            assert len(pages) == 1
            assert rows(pages[0], char) == expected, (name, ending)
            if ending == "CRLF":
                assert pages[0].endswith("\r\n")


def test_nulls_are_bare_and_values_are_quoted(sf):
    (page,) = sf.bulk2.Contact.query(
        "SELECT LastName, Title, Description FROM Contact WHERE LastName = 'BulkPy Zoë 東京 🚀'", wait=WAIT)
    assert page == '"LastName","Title","Description"\n"BulkPy Zoë 東京 🚀",,\n'


def test_several_pages_each_with_a_header(sf):
    soql = "SELECT Id, LastName FROM Contact ORDER BY Id"
    rest_ids = [r["Id"] for r in sf.query_all(soql)["records"]]
    pages = list(sf.bulk2.Contact.query(soql, max_records=1000, wait=WAIT))
    assert len(pages) == -(-len(rest_ids) // 1000)
    ids = []
    for page in pages:
        header, *records = rows(page)
        assert header == ["Id", "LastName"]
        ids.extend(r[0] for r in records)
    assert ids == rest_ids


def test_query_all_includes_deleted_records(sf):
    gone = sf.Contact.create({"LastName": "BulkPyGone"})["id"]
    sf.Contact.delete(gone)
    soql = f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{gone}'"
    assert rows("".join(sf.bulk2.Contact.query(soql, wait=WAIT))) == [["Id", "IsDeleted"]]
    assert rows("".join(sf.bulk2.Contact.query_all(soql, wait=WAIT))) == [["Id", "IsDeleted"], [gone, "true"]]


def test_download_writes_one_file_per_page(sf, tmp_path):
    results = sf.bulk2.Contact.download("SELECT Id FROM Contact", str(tmp_path), max_records=2000, wait=WAIT)
    total = sf.query("SELECT COUNT() FROM Contact")["totalSize"]
    assert [r["number_of_records"] for r in results] == [2000, 2000, total - 4000]
    assert results[-1]["locator"] == ""
    seen = set()
    for result in results:
        with open(result["file"], newline="", encoding="utf-8") as f:
            header, *records = list(csv.reader(f))
        assert header == ["Id"] and len(records) == result["number_of_records"]
        seen.update(r[0] for r in records)
        os.remove(result["file"])
    assert len(seen) == total


def test_results_come_gzipped_to_the_clients_session(sf):
    """requests asks for gzip by default; the page arrives compressed and is decoded."""
    auth = {"Authorization": f"Bearer {sf.session_id}"}
    job = sf.session.post(f"{sf.bulk2_url}query", headers=auth,
                          json={"operation": "query", "query": "SELECT Id, LastName FROM Contact"}).json()
    while sf.session.get(f"{sf.bulk2_url}query/{job['id']}", headers=auth).json()["state"] != "JobComplete":
        pass
    r = sf.session.get(f"{sf.bulk2_url}query/{job['id']}/results", headers=auth)
    assert r.headers["Content-Encoding"] == "gzip"
    assert rows(r.text)[0] == ["Id", "LastName"]
    assert int(r.headers["Sforce-NumberOfRecords"]) == len(rows(r.text)) - 1


def test_refusals_surface_as_the_clients_errors(sim, sf):
    with pytest.raises(SalesforceMalformedRequest) as refused:
        list(sf.bulk2.Contact.query("SELECT Id, MailingAddress FROM Contact", wait=WAIT))
    assert refused.value.content[0] == {"message": "Selecting compound data not supported in Bulk Query",
                                        "errorCode": "API_ERROR"}
    with pytest.raises(SalesforceMalformedRequest) as bad:
        list(sf.bulk2.Contact.query("SELECT Nope FROM Contact", wait=WAIT))
    assert bad.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceOperationError) as failed:
        list(sf.bulk2.Contact.query("SELECT LeadSource FROM Contact GROUP BY LeadSource", wait=WAIT))
    assert "GROUP BY not supported in Bulk Query" in str(failed.value)
    logged = [e for e in sim.control("GET", "requests")["requests"] if e["path"].endswith("/jobs/query")]
    assert logged[-1]["soql"] == "SELECT LeadSource FROM Contact GROUP BY LeadSource"
