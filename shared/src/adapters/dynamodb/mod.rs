//! DynamoDB adapter (in progress).
