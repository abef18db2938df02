//! The names of `aiobs_core::semconv` are the registry's: each constant is
//! compared with the one `opentelemetry-semantic-conventions` generates
//! from the semantic-conventions registry (the GenAI ones are marked
//! deprecated there only because they moved to the GenAI repository).
#![allow(deprecated)]

use aiobs_core::semconv as ours;
use opentelemetry_semantic_conventions::{SCHEMA_URL, attribute as reg, metric};

#[test]
fn attribute_names_match_the_registry() {
    let pairs = [
        (ours::GEN_AI_OPERATION_NAME, reg::GEN_AI_OPERATION_NAME),
        (ours::GEN_AI_PROVIDER_NAME, reg::GEN_AI_PROVIDER_NAME),
        (ours::GEN_AI_SYSTEM, reg::GEN_AI_SYSTEM),
        (ours::GEN_AI_CONVERSATION_ID, reg::GEN_AI_CONVERSATION_ID),
        (ours::GEN_AI_DATA_SOURCE_ID, reg::GEN_AI_DATA_SOURCE_ID),
        (ours::GEN_AI_OUTPUT_TYPE, reg::GEN_AI_OUTPUT_TYPE),
        (ours::GEN_AI_REQUEST_MODEL, reg::GEN_AI_REQUEST_MODEL),
        (
            ours::GEN_AI_REQUEST_TEMPERATURE,
            reg::GEN_AI_REQUEST_TEMPERATURE,
        ),
        (
            ours::GEN_AI_REQUEST_MAX_TOKENS,
            reg::GEN_AI_REQUEST_MAX_TOKENS,
        ),
        (ours::GEN_AI_REQUEST_TOP_P, reg::GEN_AI_REQUEST_TOP_P),
        (ours::GEN_AI_REQUEST_TOP_K, reg::GEN_AI_REQUEST_TOP_K),
        (
            ours::GEN_AI_REQUEST_FREQUENCY_PENALTY,
            reg::GEN_AI_REQUEST_FREQUENCY_PENALTY,
        ),
        (
            ours::GEN_AI_REQUEST_PRESENCE_PENALTY,
            reg::GEN_AI_REQUEST_PRESENCE_PENALTY,
        ),
        (
            ours::GEN_AI_REQUEST_STOP_SEQUENCES,
            reg::GEN_AI_REQUEST_STOP_SEQUENCES,
        ),
        (ours::GEN_AI_REQUEST_SEED, reg::GEN_AI_REQUEST_SEED),
        (
            ours::GEN_AI_REQUEST_CHOICE_COUNT,
            reg::GEN_AI_REQUEST_CHOICE_COUNT,
        ),
        (
            ours::GEN_AI_REQUEST_ENCODING_FORMATS,
            reg::GEN_AI_REQUEST_ENCODING_FORMATS,
        ),
        (ours::GEN_AI_REQUEST_STREAM, reg::GEN_AI_REQUEST_STREAM),
        (ours::GEN_AI_RESPONSE_MODEL, reg::GEN_AI_RESPONSE_MODEL),
        (ours::GEN_AI_RESPONSE_ID, reg::GEN_AI_RESPONSE_ID),
        (
            ours::GEN_AI_RESPONSE_FINISH_REASONS,
            reg::GEN_AI_RESPONSE_FINISH_REASONS,
        ),
        (
            ours::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
            reg::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
        ),
        (
            ours::GEN_AI_USAGE_INPUT_TOKENS,
            reg::GEN_AI_USAGE_INPUT_TOKENS,
        ),
        (
            ours::GEN_AI_USAGE_OUTPUT_TOKENS,
            reg::GEN_AI_USAGE_OUTPUT_TOKENS,
        ),
        (
            ours::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            reg::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        ),
        (
            ours::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
            reg::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        ),
        (
            ours::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
            reg::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        ),
        (
            ours::GEN_AI_USAGE_PROMPT_TOKENS,
            reg::GEN_AI_USAGE_PROMPT_TOKENS,
        ),
        (
            ours::GEN_AI_USAGE_COMPLETION_TOKENS,
            reg::GEN_AI_USAGE_COMPLETION_TOKENS,
        ),
        (ours::GEN_AI_AGENT_ID, reg::GEN_AI_AGENT_ID),
        (ours::GEN_AI_AGENT_NAME, reg::GEN_AI_AGENT_NAME),
        (
            ours::GEN_AI_AGENT_DESCRIPTION,
            reg::GEN_AI_AGENT_DESCRIPTION,
        ),
        (ours::GEN_AI_AGENT_VERSION, reg::GEN_AI_AGENT_VERSION),
        (ours::GEN_AI_WORKFLOW_NAME, reg::GEN_AI_WORKFLOW_NAME),
        (ours::GEN_AI_TOOL_NAME, reg::GEN_AI_TOOL_NAME),
        (ours::GEN_AI_TOOL_TYPE, reg::GEN_AI_TOOL_TYPE),
        (ours::GEN_AI_TOOL_DESCRIPTION, reg::GEN_AI_TOOL_DESCRIPTION),
        (ours::GEN_AI_TOOL_CALL_ID, reg::GEN_AI_TOOL_CALL_ID),
        (
            ours::GEN_AI_TOOL_CALL_ARGUMENTS,
            reg::GEN_AI_TOOL_CALL_ARGUMENTS,
        ),
        (ours::GEN_AI_TOOL_CALL_RESULT, reg::GEN_AI_TOOL_CALL_RESULT),
        (ours::GEN_AI_TOOL_DEFINITIONS, reg::GEN_AI_TOOL_DEFINITIONS),
        (ours::GEN_AI_INPUT_MESSAGES, reg::GEN_AI_INPUT_MESSAGES),
        (ours::GEN_AI_OUTPUT_MESSAGES, reg::GEN_AI_OUTPUT_MESSAGES),
        (
            ours::GEN_AI_SYSTEM_INSTRUCTIONS,
            reg::GEN_AI_SYSTEM_INSTRUCTIONS,
        ),
        (ours::GEN_AI_TOKEN_TYPE, reg::GEN_AI_TOKEN_TYPE),
        (ours::USER_ID, reg::USER_ID),
        (ours::SESSION_ID, reg::SESSION_ID),
        (ours::ERROR_TYPE, reg::ERROR_TYPE),
        (ours::SERVER_ADDRESS, reg::SERVER_ADDRESS),
        (ours::EXCEPTION_TYPE, reg::EXCEPTION_TYPE),
        (ours::EXCEPTION_MESSAGE, reg::EXCEPTION_MESSAGE),
        (ours::EXCEPTION_STACKTRACE, reg::EXCEPTION_STACKTRACE),
        (
            ours::GEN_AI_CLIENT_TOKEN_USAGE,
            metric::GEN_AI_CLIENT_TOKEN_USAGE,
        ),
        (
            ours::GEN_AI_CLIENT_OPERATION_DURATION,
            metric::GEN_AI_CLIENT_OPERATION_DURATION,
        ),
    ];
    let wrong: Vec<String> = pairs
        .iter()
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("ours {a:?}, registry {b:?}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        ours::SCHEMA_URL,
        SCHEMA_URL,
        "the version followed is the crate's"
    );
}
