//! Webhook registration (`chatgate webhooks`): the web widget has no provider to register with.
//! Visitors' browsers call the gateway's `/web/{account}/...` routes themselves, so every call
//! answers [`WebhookAdminError::NotNeeded`] saying so.

use async_trait::async_trait;
use chatgate_adapter::{WebhookAdmin, WebhookAdminError, WebhookReport, WebhookTarget};

use crate::WebAdapter;

impl WebAdapter {
    fn not_needed(&self) -> WebhookAdminError {
        WebhookAdminError::NotNeeded(format!(
            "web account `{}` needs no webhook registration: visitors' browsers call the gateway's /web/{}/ routes \
             (paste the script tag from `chatgate widget snippet {}` into the site)",
            self.account, self.account, self.account
        ))
    }
}

#[async_trait]
impl WebhookAdmin for WebAdapter {
    async fn set(&self, _target: &WebhookTarget) -> Result<WebhookReport, WebhookAdminError> {
        Err(self.not_needed())
    }

    async fn info(&self) -> Result<WebhookReport, WebhookAdminError> {
        Err(self.not_needed())
    }

    async fn delete(&self) -> Result<WebhookReport, WebhookAdminError> {
        Err(self.not_needed())
    }
}
