//! What a member of a management company's staff may do. A bearer token lists its
//! permissions by name (`invitations:read`, …); each manager route requires one.

/// A permission a route can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    InvitationsRead,
    InvitationsSend,
    RegistrationsManage,
    SettingsManage,
    SyncWrite,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::InvitationsRead,
        Permission::InvitationsSend,
        Permission::RegistrationsManage,
        Permission::SettingsManage,
        Permission::SyncWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::InvitationsRead => "invitations:read",
            Permission::InvitationsSend => "invitations:send",
            Permission::RegistrationsManage => "registrations:manage",
            Permission::SettingsManage => "settings:manage",
            Permission::SyncWrite => "sync:write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}
