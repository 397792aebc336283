//! Lambda: SES email events (the SNS webhook `POST /v1/ses-events` and SES's EventBridge
//! events) and campaign recounts. Placeholder: wired by the lead.

fn main() {}
