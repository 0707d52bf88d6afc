//! Listener rules, as an ALB's path-pattern rules: the first rule whose path prefix matches
//! a request's path selects the target group its targets are picked from. Pure.
//!
//! A prefix matches a path equal to it, or a path that continues it after a `/`:
//! `/objects` matches `/objects` and `/objects/photo-1`, not `/objectsx`; `/upload/`
//! matches `/upload/photo-1`. No rules at all: every target serves every path (one group).

/// One rule: requests whose path starts with `prefix` go to the targets of `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The path prefix, starting with `/`.
    pub prefix: String,
    /// The target group (the group name given at [`super::Balancer::register_in`]).
    pub group: String,
}

impl Route {
    /// A rule sending `prefix` to `group`.
    pub fn new(prefix: &str, group: &str) -> Route {
        Route {
            prefix: prefix.to_owned(),
            group: group.to_owned(),
        }
    }

    /// Whether the rule matches `path` (see the module docs).
    pub fn matches(&self, path: &str) -> bool {
        let p = self.prefix.as_str();
        match path.strip_prefix(p) {
            None => false,
            Some(rest) => p.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed<'a> {
    /// No rules are configured: any target.
    Any,
    /// The targets of this group.
    Group(&'a str),
    /// Rules are configured and none matches: `404`.
    NoRule,
}

/// The first rule of `routes` matching `path`.
pub fn select<'a>(routes: &'a [Route], path: &str) -> Routed<'a> {
    if routes.is_empty() {
        return Routed::Any;
    }
    routes
        .iter()
        .find(|r| r.matches(path))
        .map_or(Routed::NoRule, |r| Routed::Group(&r.group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_itself_and_what_continues_it_after_a_slash() {
        let r = Route::new("/objects", "manage");
        assert!(r.matches("/objects"));
        assert!(r.matches("/objects/photo-1"));
        assert!(!r.matches("/objectsx"));
        assert!(!r.matches("/object"));
        let u = Route::new("/upload/", "upload");
        assert!(u.matches("/upload/photo-1"));
        assert!(!u.matches("/upload"));
    }

    #[test]
    fn the_first_matching_rule_wins_and_no_rules_means_any_target() {
        let routes = [Route::new("/store/special", "a"), Route::new("/store", "b")];
        assert_eq!(select(&routes, "/store/special/x"), Routed::Group("a"));
        assert_eq!(select(&routes, "/store/x"), Routed::Group("b"));
        assert_eq!(select(&routes, "/elsewhere"), Routed::NoRule);
        assert_eq!(select(&[], "/anything"), Routed::Any);
    }
}
