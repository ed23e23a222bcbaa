use std::str::FromStr;

use super::{Invalid, Role};

impl Role {
    /// Which anchor claim the role needs: `network`, `region`, `org` or none.
    pub fn anchor(self) -> Option<&'static str> {
        match self {
            Role::Operator => None,
            Role::NetworkAdmin | Role::NetworkSubmitter => Some("network"),
            Role::RegionAnalyst => Some("region"),
            Role::Researcher => Some("org"),
        }
    }
}

impl FromStr for Role {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let up = s.trim().to_ascii_uppercase().replace('-', "_");
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == up)
            .ok_or_else(|| {
                Invalid::new(format!(
                    "`{s}` is not a role: use one of {}",
                    Role::ALL.map(Role::as_str).join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!("network-admin".parse::<Role>(), Ok(Role::NetworkAdmin));
        assert!("ADMIN".parse::<Role>().is_err());
    }
}
