//! Query strings of the JSON API, parsed strictly: an unknown parameter, a
//! repeated one or a value that does not parse is a 400 naming it.

use aiobs_core::{SpanType, TraceId};
use aiobs_exporter_default::{Cursor, PageRequest, TraceFilter, TraceStatus};
use chrono::{DateTime, Utc};

use super::api::ApiError;

/// The parameters `GET /api/traces` accepts, in the order the docs list them.
pub(crate) const LIST_PARAMS: [&str; 14] = [
    "limit",
    "cursor",
    "started_after",
    "started_before",
    "root_name",
    "name_contains",
    "span_type",
    "entity_id",
    "entity_name",
    "user_id",
    "session_id",
    "tag",
    "status",
    "trace_id",
];

/// The parameters `GET /api/sessions/{id}` accepts.
pub(crate) const PAGE_PARAMS: [&str; 2] = ["limit", "cursor"];

/// The default page size of the API.
const DEFAULT_LIMIT: usize = 50;

/// Name–value pairs of a query string, checked against `known`. Empty values
/// count as absent (what an HTML form sends for an empty field).
fn pairs(raw: Option<&str>, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !known.contains(&name.as_ref()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {name:?}; this endpoint takes {}",
                known.join(", ")
            )));
        }
        if name != "tag" && out.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::bad_request(format!(
                "query parameter {name:?} is given twice"
            )));
        }
        if !value.is_empty() {
            out.push((name.into_owned(), value.into_owned()));
        }
    }
    Ok(out)
}

fn invalid(name: &str, value: &str, expected: &str) -> ApiError {
    ApiError::bad_request(format!(
        "query parameter {name}={value:?}: expected {expected}"
    ))
}

fn time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid(name, value, "an RFC 3339 time such as 2026-11-30T08:00:00Z"))
}

/// Applies `limit` or `cursor` to `page`; `false` for any other name.
fn page_param(name: &str, value: &str, page: &mut PageRequest) -> Result<bool, ApiError> {
    match name {
        "limit" => {
            let max = PageRequest::MAX_LIMIT;
            page.limit = value
                .parse()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| invalid(name, value, &format!("a whole number from 1 to {max}")))?;
        }
        "cursor" => {
            let c: Cursor = value.parse().map_err(|_| {
                invalid(name, value, "the next_cursor of a previous page, unchanged")
            })?;
            page.cursor = Some(c);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `GET /api/sessions/{id}`: which page.
pub(crate) fn page_query(raw: Option<&str>) -> Result<PageRequest, ApiError> {
    let mut page = PageRequest::first(DEFAULT_LIMIT);
    for (name, value) in pairs(raw, &PAGE_PARAMS)? {
        page_param(&name, &value, &mut page)?;
    }
    Ok(page)
}

/// `GET /api/traces`: the store's filter and the page.
pub(crate) fn list_query(raw: Option<&str>) -> Result<(TraceFilter, PageRequest), ApiError> {
    let mut page = PageRequest::first(DEFAULT_LIMIT);
    let mut f = TraceFilter::new();
    for (name, value) in pairs(raw, &LIST_PARAMS)? {
        if page_param(&name, &value, &mut page)? {
            continue;
        }
        let v = value.clone();
        f = match name.as_str() {
            "started_after" => f.started_after(time(&name, &value)?),
            "started_before" => f.started_before(time(&name, &value)?),
            "root_name" => f.root_name(v),
            "name_contains" => f.name_contains(v),
            "span_type" => f.span_type(SpanType::parse(&value).ok_or_else(|| {
                let all: Vec<&str> = SpanType::ALL.iter().map(|t| t.as_str()).collect();
                invalid(&name, &value, &format!("one of {}", all.join(", ")))
            })?),
            "entity_id" => f.entity_id(v),
            "entity_name" => f.entity_name(v),
            "user_id" => f.user_id(v),
            "session_id" => f.session_id(v),
            "tag" => f.tag(v),
            "status" => f.status(
                value
                    .parse::<TraceStatus>()
                    .map_err(|_| invalid(&name, &value, "ok, error or running"))?,
            ),
            "trace_id" => f.trace_id(
                value
                    .parse::<TraceId>()
                    .map_err(|_| invalid(&name, &value, "a trace id of 32 hexadecimal digits"))?,
            ),
            // `pairs` let only known names through.
            _ => f,
        };
    }
    Ok((f, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> String {
        list_query(Some(raw)).unwrap_err().message().to_owned()
    }

    #[test]
    fn every_filter_parses() {
        let id = "0af7651916cd43dd8448eb211c80319c";
        let (f, p) = list_query(Some(&format!(
            "limit=5&started_after=2026-11-30T08:00:00Z&started_before=2026-11-30T09:00:00%2B01:00\
             &root_name=a+b&name_contains=%25&span_type=tool_call&entity_id=e&entity_name=E\
             &user_id=u&session_id=s&tag=x&tag=y&status=error&trace_id={id}&cursor="
        )))
        .unwrap();
        assert_eq!(p.limit, 5);
        assert_eq!(p.cursor, None, "an empty value is no value");
        assert_eq!(f.root_name.as_deref(), Some("a b"));
        assert_eq!(f.name_contains.as_deref(), Some("%"));
        assert_eq!(f.span_type, Some(SpanType::ToolCall));
        assert_eq!(f.tags, ["x", "y"]);
        assert_eq!(f.status, Some(TraceStatus::Error));
        assert_eq!(f.trace_id.map(|t| t.to_string()).as_deref(), Some(id));
        assert_eq!(
            f.started_before.unwrap().to_rfc3339(),
            "2026-11-30T08:00:00+00:00"
        );
        assert_eq!(list_query(None).unwrap().1.limit, DEFAULT_LIMIT);
    }

    #[test]
    fn bad_parameters_name_themselves() {
        for (raw, says) in [
            ("colour=red", "unknown query parameter \"colour\""),
            ("user_id=a&user_id=b", "\"user_id\" is given twice"),
            (
                "limit=0",
                "limit=\"0\": expected a whole number from 1 to 1000",
            ),
            ("limit=1001", "from 1 to 1000"),
            ("limit=ten", "from 1 to 1000"),
            ("cursor=garbage", "cursor=\"garbage\""),
            ("started_after=yesterday", "RFC 3339"),
            ("span_type=llm", "one of agent_run, model_generation"),
            ("status=failed", "ok, error or running"),
            ("trace_id=xyz", "32 hexadecimal digits"),
        ] {
            assert!(err(raw).contains(says), "{raw}: {}", err(raw));
        }
        assert!(page_query(Some("tag=x")).is_err());
        assert_eq!(page_query(Some("limit=7")).unwrap().limit, 7);
    }
}
