//! Reads what the local stack needs from `template.yaml`: the routes of each function and the
//! table's definition. CloudFormation short tags (`!Ref`, `!GetAtt`, `!Sub`) are kept as tagged
//! values and ignored where they don't matter.

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("template.yaml: {0}")]
    Shape(String),
}

/// One HTTP API route and the function behind it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// The function's logical id, e.g. `PointsFunction`.
    pub function: String,
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// Path template, e.g. `/v1/points/ledger` or `/v1/admin/checkin-campaigns/{campaign_id}`.
    pub path: String,
}

impl Route {
    /// API Gateway's route key: `GET /v1/points`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A function run on a schedule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Schedule {
    pub function: String,
    pub every: std::time::Duration,
}

/// `rate(1 minute)`, `rate(5 minutes)`, `rate(2 hours)`, `rate(1 day)`.
pub fn parse_rate(expression: &str) -> Option<std::time::Duration> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let seconds = match (unit, n) {
        ("minute", 1) | ("minutes", 2..) => 60,
        ("hour", 1) | ("hours", 2..) => 3_600,
        ("day", 1) | ("days", 2..) => 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n * seconds))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub key_schema: Vec<KeyElement>,
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

/// The `AWS::DynamoDB::Table` resource, as much as DynamoDB Local needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// (name, type `S` | `N` | `B`)
    pub attributes: Vec<(String, String)>,
    pub key_schema: Vec<KeyElement>,
    pub global_indexes: Vec<IndexSpec>,
    pub ttl_attribute: Option<String>,
}

/// The HTTP API's CORS configuration, as API Gateway applies it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    pub allow_headers: Vec<String>,
    pub allow_methods: Vec<String>,
    pub max_age: Option<u64>,
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if it is allowed.
    pub fn allow_origin(&self, origin: &str) -> Option<String> {
        if self.allow_origins.iter().any(|o| o == "*") {
            Some("*".to_owned())
        } else {
            self.allow_origins
                .iter()
                .find(|o| o.eq_ignore_ascii_case(origin))
                .cloned()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Ok(Self {
            root: serde_yaml_ng::from_str(text)?,
        })
    }

    /// The template's parameters: name and default (as text; none when it has no default).
    pub fn parameters(&self) -> Vec<(String, Option<String>)> {
        let Some(parameters) = self.root.get("Parameters").and_then(Value::as_mapping) else {
            return Vec::new();
        };
        parameters
            .iter()
            .filter_map(|(name, spec)| {
                let default = match spec.get("Default") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                Some((name.as_str()?.to_owned(), default))
            })
            .collect()
    }

    fn resources(&self) -> Result<&Mapping, TemplateError> {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| TemplateError::Shape("no Resources".into()))
    }

    /// A value as a list of strings, resolving `!Ref Parameter` to the parameter's default (a
    /// `CommaDelimitedList` default is split on commas).
    fn strings(&self, value: &Value) -> Vec<String> {
        match value {
            Value::String(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
            Value::Number(n) => vec![n.to_string()],
            Value::Sequence(items) => items.iter().flat_map(|v| self.strings(v)).collect(),
            Value::Tagged(tagged) if tagged.tag == "Ref" => {
                let name = tagged.value.as_str().unwrap_or_default();
                self.root
                    .get("Parameters")
                    .and_then(|p| p.get(name))
                    .and_then(|p| p.get("Default"))
                    .map(|d| self.strings(d))
                    .unwrap_or_default()
            }
            _ => vec![],
        }
    }

    /// The CORS configuration of the `AWS::Serverless::HttpApi`, if it has one.
    pub fn cors(&self) -> Result<Option<Cors>, TemplateError> {
        let api = self
            .resources()?
            .values()
            .find(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::HttpApi"));
        let Some(config) = api
            .and_then(|a| a.get("Properties"))
            .and_then(|p| p.get("CorsConfiguration"))
        else {
            return Ok(None);
        };
        let list = |field: &str| config.get(field).map(|v| self.strings(v)).unwrap_or_default();
        Ok(Some(Cors {
            allow_origins: list("AllowOrigins"),
            allow_headers: list("AllowHeaders"),
            allow_methods: list("AllowMethods"),
            max_age: list("MaxAge").first().and_then(|m| m.parse().ok()),
        }))
    }

    /// Every `HttpApi` event of every `AWS::Serverless::Function`, sorted.
    pub fn routes(&self) -> Result<Vec<Route>, TemplateError> {
        let mut routes = Vec::new();
        for (name, resource) in self.resources()? {
            if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let function = name.as_str().unwrap_or_default().to_owned();
            let events = resource
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping);
            for (_, event) in events.into_iter().flatten() {
                if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                    continue;
                }
                let props = event.get("Properties");
                let field = |f: &str| {
                    props
                        .and_then(|p| p.get(f))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                let (Some(method), Some(path)) = (field("Method"), field("Path")) else {
                    return Err(TemplateError::Shape(format!(
                        "{function}: an HttpApi event needs Method and Path"
                    )));
                };
                routes.push(Route {
                    function: function.clone(),
                    method: method.to_ascii_uppercase(),
                    path,
                });
            }
        }
        routes.sort();
        Ok(routes)
    }

    /// Every `Schedule` event of every function with its `rate(...)` expression, sorted.
    pub fn schedules(&self) -> Result<Vec<Schedule>, TemplateError> {
        let mut schedules = Vec::new();
        for (name, resource) in self.resources()? {
            let function = name.as_str().unwrap_or_default().to_owned();
            let events = resource
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping);
            for (_, event) in events.into_iter().flatten() {
                if event.get("Type").and_then(Value::as_str) != Some("Schedule") {
                    continue;
                }
                let expression = event
                    .get("Properties")
                    .and_then(|p| p.get("Schedule"))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let every = parse_rate(expression).ok_or_else(|| {
                    TemplateError::Shape(format!(
                        "{function}: only rate(N unit) schedules run locally, not {expression:?}"
                    ))
                })?;
                schedules.push(Schedule {
                    function: function.clone(),
                    every,
                });
            }
        }
        schedules.sort();
        Ok(schedules)
    }

    /// A function's property, from its own `Properties` or else from `Globals.Function`.
    fn function_property(&self, function: &str, name: &str) -> Option<&Value> {
        let own = self
            .resources()
            .ok()?
            .get(function)
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get(name));
        own.or_else(|| self.root.get("Globals")?.get("Function")?.get(name))
    }

    /// The logical ids of every `AWS::Serverless::Function`.
    pub fn functions(&self) -> Result<Vec<String>, TemplateError> {
        Ok(self
            .resources()?
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function"))
            .filter_map(|(name, _)| name.as_str().map(str::to_owned))
            .collect())
    }

    /// A function's `Timeout` in seconds (its own, or the global one).
    pub fn timeout_seconds(&self, function: &str) -> Option<u64> {
        self.function_property(function, "Timeout")?.as_u64()
    }

    /// A function's `Architectures` as literal strings; a `!Ref` or any other tag is left out, so
    /// a value chosen at deploy time shows as missing.
    pub fn architectures(&self, function: &str) -> Vec<String> {
        self.function_property(function, "Architectures")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }

    /// The DynamoDB actions a function's inline policy statements allow, each with the resource
    /// kind it is allowed on: `table` (`!GetAtt Table.Arn`) or `index` (`${Table.Arn}/index/*`).
    pub fn dynamodb_permissions(&self, function: &str) -> Vec<(String, &'static str)> {
        let mut allowed = Vec::new();
        let policies = self
            .function_property(function, "Policies")
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        for policy in &policies {
            for statement in policy
                .get("Statement")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                    continue;
                }
                let resources: Vec<&'static str> = match statement.get("Resource") {
                    Some(Value::Sequence(items)) => items.iter().filter_map(resource_kind).collect(),
                    Some(one) => resource_kind(one).into_iter().collect(),
                    None => vec![],
                };
                let actions: Vec<String> = match statement.get("Action") {
                    Some(Value::Sequence(items)) => items
                        .iter()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect(),
                    Some(Value::String(a)) => vec![a.clone()],
                    _ => vec![],
                };
                for action in actions {
                    let Some(name) = action.strip_prefix("dynamodb:") else {
                        continue;
                    };
                    for resource in &resources {
                        allowed.push((name.to_owned(), *resource));
                    }
                }
            }
        }
        allowed
    }

    /// The single `AWS::DynamoDB::Table` resource.
    pub fn table(&self) -> Result<TableSpec, TemplateError> {
        let shape = |m: &str| TemplateError::Shape(m.to_owned());
        let mut tables = self
            .resources()?
            .values()
            .filter(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table"));
        let table = tables.next().ok_or_else(|| shape("no AWS::DynamoDB::Table"))?;
        if tables.next().is_some() {
            return Err(shape("more than one table: the design has one"));
        }
        let props = table
            .get("Properties")
            .ok_or_else(|| shape("table without Properties"))?;
        let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).map(str::to_owned);
        let list = |v: &Value, f: &str| v.get(f).and_then(Value::as_sequence).cloned().unwrap_or_default();
        let key_schema = |v: &Value| -> Result<Vec<KeyElement>, TemplateError> {
            list(v, "KeySchema")
                .iter()
                .map(|k| match (text(k, "AttributeName"), text(k, "KeyType")) {
                    (Some(name), Some(key_type)) => Ok(KeyElement { name, key_type }),
                    _ => Err(shape("KeySchema entries need AttributeName and KeyType")),
                })
                .collect()
        };
        let attributes = list(props, "AttributeDefinitions")
            .iter()
            .map(|a| match (text(a, "AttributeName"), text(a, "AttributeType")) {
                (Some(n), Some(t)) => Ok((n, t)),
                _ => Err(shape("AttributeDefinitions need AttributeName and AttributeType")),
            })
            .collect::<Result<_, _>>()?;
        let global_indexes = list(props, "GlobalSecondaryIndexes")
            .iter()
            .map(|gsi| {
                let projection = gsi.get("Projection");
                Ok(IndexSpec {
                    name: text(gsi, "IndexName").ok_or_else(|| shape("a GSI without IndexName"))?,
                    key_schema: key_schema(gsi)?,
                    projection_type: projection
                        .and_then(|p| text(p, "ProjectionType"))
                        .unwrap_or_else(|| "ALL".to_owned()),
                    non_key_attributes: projection
                        .map(|p| list(p, "NonKeyAttributes"))
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                })
            })
            .collect::<Result<_, TemplateError>>()?;
        let ttl_attribute = props
            .get("TimeToLiveSpecification")
            .filter(|t| t.get("Enabled").and_then(Value::as_bool) == Some(true))
            .and_then(|t| text(t, "AttributeName"));
        Ok(TableSpec {
            attributes,
            key_schema: key_schema(props)?,
            global_indexes,
            ttl_attribute,
        })
    }
}

/// `!GetAtt Table.Arn` is the table; `!Sub "${Table.Arn}/index/*"` (or one named index) its indexes.
fn resource_kind(value: &Value) -> Option<&'static str> {
    let Value::Tagged(tagged) = value else {
        return None;
    };
    let text = tagged.value.as_str().unwrap_or_default();
    match (tagged.tag.to_string().trim_start_matches('!'), text) {
        ("GetAtt", "Table.Arn") => Some("table"),
        ("Sub", index) if index.starts_with("${Table.Arn}/index/") => Some("index"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_parse_and_odd_ones_are_refused() {
        let secs = |e: &str| parse_rate(e).map(|d| d.as_secs());
        assert_eq!(secs("rate(1 minute)"), Some(60));
        assert_eq!(secs("rate(5 minutes)"), Some(300));
        assert_eq!(secs("rate(2 hours)"), Some(7_200));
        assert_eq!(secs("rate(1 day)"), Some(86_400));
        for bad in [
            "rate(1 minutes)",
            "rate(2 minute)",
            "rate(0 minutes)",
            "cron(0 * * * ? *)",
            "rate(x minutes)",
        ] {
            assert_eq!(secs(bad), None, "{bad}");
        }
        let template = Template::load(&crate::repo_root().join("template.yaml")).unwrap();
        let schedules = template.schedules().unwrap();
        assert_eq!(schedules.len(), 1);
        assert_eq!(schedules[0].function, "SettleContestsFunction");
    }

    use super::*;

    #[test]
    fn build_and_deploy_share_one_architecture() {
        let t = Template::load(&crate::repo_root().join("template.yaml")).unwrap();
        let parameters = t.root.get("Parameters").and_then(Value::as_mapping).unwrap();
        assert!(
            !parameters.contains_key("Architecture"),
            "an architecture parameter lets sam deploy ship what sam build did not build"
        );
        for function in t.functions().unwrap() {
            assert_eq!(t.architectures(&function), vec!["arm64"], "{function}");
        }
    }

    #[test]
    fn reads_policies_timeouts_through_globals() {
        let t = Template::parse(
            r#"
Globals:
  Function:
    Timeout: 20
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:GetItem, dynamodb:Query]
              Resource: !GetAtt Table.Arn
            - Effect: Allow
              Action: dynamodb:Query
              Resource: !Sub "${Table.Arn}/index/*"
            - Effect: Deny
              Action: dynamodb:PutItem
              Resource: !GetAtt Table.Arn
"#,
        )
        .unwrap();
        assert_eq!(t.timeout_seconds("F"), Some(20));
        assert_eq!(
            t.dynamodb_permissions("F"),
            vec![
                ("GetItem".to_owned(), "table"),
                ("Query".to_owned(), "table"),
                ("Query".to_owned(), "index")
            ]
        );
    }

    #[test]
    fn reads_routes_and_table_through_short_tags() {
        let t = Template::parse(
            r#"
Resources:
  T:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-t"
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
  F:
    Type: AWS::Serverless::Function
    Properties:
      Environment: {Variables: {TABLE_NAME: !Ref T}}
      Events:
        A: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: get, Path: /v1/x}}
        S: {Type: Schedule, Properties: {Schedule: rate(1 minute)}}
"#,
        )
        .unwrap();
        assert_eq!(
            t.routes().unwrap(),
            vec![Route {
                function: "F".into(),
                method: "GET".into(),
                path: "/v1/x".into()
            }]
        );
        let table = t.table().unwrap();
        assert_eq!(table.attributes, vec![("pk".to_string(), "S".to_string())]);
        assert_eq!(table.ttl_attribute.as_deref(), Some("ttl"));
    }

    #[test]
    fn reads_cors_through_parameter_defaults() {
        let t = Template::load(&crate::repo_root().join("template.yaml")).unwrap();
        let cors = t.cors().unwrap().unwrap();
        assert_eq!(cors.allow_origins, vec!["*"]);
        assert!(cors.allow_headers.contains(&"idempotency-key".to_owned()));
        assert!(cors.allow_methods.contains(&"PUT".to_owned()));
        assert_eq!(cors.max_age, Some(600));
        assert_eq!(cors.allow_origin("https://shop.example"), Some("*".to_owned()));
    }
}
