//! Contract suite on DynamoDB via moto (being written).
