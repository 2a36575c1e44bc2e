//! Reads `template.yaml`, the one source of truth for the tables and for the stream event source,
//! so local tables and the local stream trigger match what `sam deploy` creates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value as Json;
use serde_yaml::Value;

/// The parts of `template.yaml` that local tools need, with `!Ref` and `!Sub` resolved against
/// the parameter defaults.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
    parameters: BTreeMap<String, String>,
}

/// A table as declared in the template, in DynamoDB's own JSON shape.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub logical_id: String,
    pub name: String,
    pub properties: Json,
}

/// How a mapping starts reading a shard it has no checkpoint for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
}

/// A function's event source mapping settings (a DynamoDB stream's or a Kinesis stream's: SAM
/// names them alike).
#[derive(Debug, Clone, PartialEq)]
pub struct EventSource {
    /// The table (DynamoDB) or stream (Kinesis) the mapping reads.
    pub logical_id: String,
    pub starting_position: StartingPosition,
    pub batch_size: usize,
    pub maximum_retry_attempts: i64,
    pub bisect_on_function_error: bool,
    pub maximum_record_age_seconds: i64,
    pub filter_patterns: Vec<Json>,
    pub report_batch_item_failures: bool,
    /// How long a shard's poller waits after finding nothing new: the batching window, or the
    /// source's own polling pace when there is none.
    pub polling_interval: Duration,
}

/// A Kinesis data stream of the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisStreamSpec {
    pub logical_id: String,
    pub name: String,
    pub shard_count: i32,
}

/// A Lambda function of the template: its logical id (what `sam local invoke` and
/// `.aws-sam/build/<id>/` are named by) and the cargo binary `sam build` compiles for it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub binary: String,
}

/// The project's `template.yaml`.
pub fn default_path() -> PathBuf {
    repo_path("template.yaml")
}

/// A file of the repository (a template, a sample event), found from the crate at build time or
/// from the current folder (the repository root).
pub fn repo_path(relative: &str) -> PathBuf {
    let from_crate = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    if from_crate.exists() {
        from_crate
    } else {
        PathBuf::from(relative)
    }
}

impl Template {
    pub fn load_default() -> Result<Self> {
        Self::load(&default_path())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self> {
        let root: Value = serde_yaml::from_str(text).context("template.yaml is not YAML")?;
        let mut parameters = BTreeMap::new();
        if let Some(Value::Mapping(params)) = root.get("Parameters") {
            for (name, spec) in params {
                let name = name.as_str().unwrap_or_default().to_owned();
                if let Some(default) = spec.get("Default") {
                    parameters.insert(name, scalar(default).unwrap_or_default());
                }
            }
        }
        Ok(Self { root, parameters })
    }

    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// A `Number` parameter's `MinValue` and `MaxValue`, where the template gives both.
    pub fn parameter_range(&self, name: &str) -> Option<(i64, i64)> {
        let spec = self.root.get("Parameters")?.get(name)?;
        let bound = |key: &str| spec.get(key).and_then(scalar)?.parse().ok();
        Some((bound("MinValue")?, bound("MaxValue")?))
    }

    /// Every resource of one type (`AWS::CloudWatch::Alarm`), by logical id, as written.
    pub fn resources_of_type(&self, resource_type: &str) -> Vec<(String, Json)> {
        let resources = self.resources(resource_type);
        let json = resources.filter_map(|(id, r)| Some((id, serde_json::to_value(r).ok()?)));
        json.collect()
    }

    /// Every resource's logical id, in template order.
    pub(crate) fn logical_ids(&self) -> Vec<String> {
        let resources = self.root.get("Resources").and_then(Value::as_mapping);
        let ids = resources
            .into_iter()
            .flatten()
            .filter_map(|(id, _)| id.as_str());
        ids.map(str::to_owned).collect()
    }

    /// The resources of one type, by logical id, in template order.
    fn resources<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (String, &'a Value)> + 'a {
        let resources = self
            .root
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter();
        let of_kind = resources
            .flatten()
            .filter(move |(_, r)| r["Type"].as_str() == Some(kind));
        of_kind.map(|(id, r)| (id.as_str().unwrap_or_default().to_owned(), r))
    }

    /// A resource's `Properties` with `!Ref` and `!Sub` resolved as for the tables (other
    /// intrinsics, `!GetAtt X.Arn`, are left as the text `!GetAtt X.Arn`).
    pub fn properties(&self, logical_id: &str) -> Result<Json> {
        self.resolve(
            self.resource(logical_id)?
                .get("Properties")
                .unwrap_or(&Value::Null),
        )
    }

    pub(crate) fn resource(&self, logical_id: &str) -> Result<&Value> {
        self.root
            .get("Resources")
            .and_then(|r| r.get(logical_id))
            .ok_or_else(|| anyhow!("template.yaml has no resource {logical_id}"))
    }

    /// A resource's properties, with `!Ref` and `!Sub` resolved; and its `name_property` (its
    /// logical id when it has none).
    fn named_properties(
        &self,
        logical_id: &str,
        resource: &Value,
        name: &str,
    ) -> Result<(String, Json)> {
        let properties = self.resolve(resource.get("Properties").unwrap_or(&Value::Null))?;
        let name = properties[name].as_str().unwrap_or(logical_id).to_owned();
        Ok((name, properties))
    }

    /// Every `AWS::Serverless::Function`, in template order.
    pub fn functions(&self) -> Result<Vec<FunctionSpec>> {
        let functions =
            self.resources("AWS::Serverless::Function")
                .map(|(logical_id, resource)| {
                    let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str();
                    let binary = binary.with_context(|| {
                        format!("{logical_id} has no Metadata.BuildProperties.Binary")
                    })?;
                    Ok(FunctionSpec {
                        binary: binary.to_owned(),
                        logical_id,
                    })
                });
        functions.collect()
    }

    /// Every `AWS::DynamoDB::Table`, as `CreateTable`-shaped JSON.
    pub fn tables(&self) -> Result<Vec<TableSpec>> {
        let tables = self
            .resources("AWS::DynamoDB::Table")
            .map(|(logical_id, resource)| {
                let (name, properties) =
                    self.named_properties(&logical_id, resource, "TableName")?;
                Ok(TableSpec {
                    logical_id,
                    name,
                    properties,
                })
            });
        tables.collect()
    }

    pub fn table(&self, logical_id: &str) -> Result<TableSpec> {
        self.tables()?
            .into_iter()
            .find(|t| t.logical_id == logical_id)
            .ok_or_else(|| anyhow!("template.yaml has no table {logical_id}"))
    }

    /// The DynamoDB event source of a function (the first one it has). Lambda polls a
    /// DynamoDB stream's shards four times a second.
    pub fn stream_source(&self, function: &str) -> Result<EventSource> {
        self.mapping(
            function,
            "DynamoDB",
            "StreamArn",
            Duration::from_millis(250),
        )
    }

    /// The Kinesis event source of a function (the first one it has), with the property names of
    /// SAM's `Type: Kinesis` event. Lambda polls each Kinesis shard about once a second.
    pub fn kinesis_source(&self, function: &str) -> Result<EventSource> {
        self.mapping(function, "Kinesis", "Arn", Duration::from_secs(1))
    }

    fn mapping(
        &self,
        function: &str,
        kind: &str,
        attribute: &str,
        polling: Duration,
    ) -> Result<EventSource> {
        let (logical_id, props) = self.event_source(function, kind, attribute)?;
        let number = |key: &str, default: i64| match props.get(key) {
            None => Ok(default),
            Some(v) => json_i64(v).ok_or_else(|| anyhow!("{function}: {key} is not a number")),
        };
        let starting_position = match props["StartingPosition"].as_str() {
            Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
            Some("LATEST") => StartingPosition::Latest,
            other => bail!(
                "{function}: StartingPosition {other:?} is not supported locally (TRIM_HORIZON or LATEST)"
            ),
        };
        let filters = props["FilterCriteria"]["Filters"]
            .as_array()
            .into_iter()
            .flatten();
        let filter_patterns = filters.map(|f| {
            let text = f["Pattern"].as_str().unwrap_or("{}");
            serde_json::from_str(text).context("FilterCriteria pattern is not JSON")
        });
        let response_types = props["FunctionResponseTypes"]
            .as_array()
            .into_iter()
            .flatten();
        let window = u64::try_from(number("MaximumBatchingWindowInSeconds", 0)?)?;
        Ok(EventSource {
            logical_id,
            starting_position,
            batch_size: usize::try_from(number("BatchSize", 100)?)?,
            // Lambda's default for streams is "retry until the record expires".
            maximum_retry_attempts: number("MaximumRetryAttempts", -1)?,
            bisect_on_function_error: props["BisectBatchOnFunctionError"] == true,
            maximum_record_age_seconds: number("MaximumRecordAgeInSeconds", -1)?,
            filter_patterns: filter_patterns.collect::<Result<_>>()?,
            report_batch_item_failures: response_types
                .into_iter()
                .any(|t| t == "ReportBatchItemFailures"),
            polling_interval: Duration::from_secs(window).max(polling),
        })
    }

    /// Every `AWS::Kinesis::Stream`: its name (`Name`, else the logical id) and shard count.
    pub fn kinesis_streams(&self) -> Result<Vec<KinesisStreamSpec>> {
        let streams = self
            .resources("AWS::Kinesis::Stream")
            .map(|(logical_id, resource)| {
                let (name, properties) = self.named_properties(&logical_id, resource, "Name")?;
                let on_demand = properties["StreamModeDetails"]["StreamMode"] == "ON_DEMAND";
                let shard_count = match properties.get("ShardCount").and_then(json_i64) {
                    Some(count) => i32::try_from(count)?,
                    // On-demand streams start with four shards.
                    None if on_demand => 4,
                    None => bail!("{logical_id}: ShardCount is missing"),
                };
                Ok(KinesisStreamSpec {
                    logical_id,
                    name,
                    shard_count,
                })
            });
        streams.collect()
    }

    /// The first event of `event_type` of a function: the logical id its `source_property`
    /// (`Stream: !GetAtt <Id>.<attribute>`) points at, and its properties resolved.
    fn event_source(&self, function: &str, kind: &str, attribute: &str) -> Result<(String, Json)> {
        let events = self.resource(function)?["Properties"]["Events"].as_mapping();
        let events = events.ok_or_else(|| anyhow!("{function} has no Events"))?;
        let source = events.values().find(|e| e["Type"].as_str() == Some(kind));
        let source = source.ok_or_else(|| anyhow!("{function} has no {kind} event source"))?;
        let raw = &source["Properties"];
        let target = match &raw["Stream"] {
            Value::Tagged(t) if t.tag == "GetAtt" => {
                t.value.as_str().and_then(|s| s.split_once('.'))
            }
            _ => None,
        };
        let logical_id = match target {
            Some((id, attr)) if attr == attribute => id.to_owned(),
            _ => bail!("{function}: Stream must be !GetAtt <resource>.{attribute}"),
        };
        Ok((logical_id, self.resolve(raw)?))
    }

    /// A function's environment variables, resolved; for local runs of the functions.
    pub fn function_environment(&self, function: &str) -> Result<BTreeMap<String, Json>> {
        let vars = &self.resource(function)?["Properties"]["Environment"]["Variables"];
        match self.resolve(vars)? {
            Json::Object(vars) => Ok(vars.into_iter().collect()),
            _ => Ok(BTreeMap::new()),
        }
    }

    /// YAML with CloudFormation short-form tags → JSON: `!Ref` of a parameter becomes its
    /// default, `!Ref` of a table its table name, `!Sub` is substituted, other tags stay tags.
    pub(crate) fn resolve(&self, value: &Value) -> Result<Json> {
        Ok(match value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Number(n) => serde_json::to_value(n)?,
            Value::String(s) => Json::String(s.clone()),
            Value::Sequence(seq) => {
                Json::Array(seq.iter().map(|v| self.resolve(v)).collect::<Result<_>>()?)
            }
            Value::Mapping(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    out.insert(scalar(k).unwrap_or_default(), self.resolve(v)?);
                }
                Json::Object(out)
            }
            Value::Tagged(tagged) => {
                let arg = tagged.value.as_str().unwrap_or_default();
                match tagged.tag.to_string().as_str() {
                    "!Ref" => self.reference(arg),
                    "!Sub" => Json::String(self.substitute(arg)),
                    other => Json::String(format!("{other} {arg}")),
                }
            }
        })
    }

    fn reference(&self, name: &str) -> Json {
        if let Some(value) = self.parameters.get(name) {
            return value
                .parse::<i64>()
                .map(Json::from)
                .unwrap_or_else(|_| Json::String(value.clone()));
        }
        if let Ok(table) = self.table(name) {
            return Json::String(table.name);
        }
        // A stream's Ref is its name, as CloudFormation answers it.
        let stream = self
            .kinesis_streams()
            .ok()
            .and_then(|streams| streams.into_iter().find(|s| s.logical_id == name));
        Json::String(stream.map_or_else(|| name.to_owned(), |s| s.name))
    }

    fn substitute(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (name, value) in &self.parameters {
            out = out.replace(&format!("${{{name}}}"), value);
        }
        out
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_i64(v: &Json) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}
