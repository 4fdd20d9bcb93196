"""Tests on template.yaml as CloudFormation will see it: parsed, rendered with the SAM transform
(the aws-sam-translator that cfn-lint bundles, pinned in scripts/pins.env), and with conditions
and parameters resolved the way CloudFormation and `sam local` resolve them. Never on its text.

Run by scripts/test.sh:  .local/venv/bin/python -m unittest discover -s tests/py -v
"""

import copy
import json
import os
import pathlib
import re
import tomllib
import unittest

from cfnlint.decode import decode
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

ROOT = pathlib.Path(__file__).resolve().parents[2]
NO_VALUE = object()


def load_template():
    template, errors = decode(str(ROOT / "template.yaml"))
    if errors:
        raise AssertionError(f"template.yaml does not parse: {errors}")
    return template


def render(template, **parameters):
    """The SAM transform, as `sam deploy` runs it after `sam package` (code in S3)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    packaged = copy.deepcopy(template)
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/function.zip"
    return Translator(managed_policy_map={}, sam_parser=Parser()).translate(
        sam_template=packaged, parameter_values={"AWS::Region": "us-east-1", **parameters})


class Resolver:
    """Evaluates Ref (to parameters), Fn::If, Fn::Equals, Fn::Not and AWS::NoValue for given
    parameter values; references to resources stay as they are."""

    def __init__(self, template, **overrides):
        self.params = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
        unknown = set(overrides) - set(self.params)
        if unknown:
            raise AssertionError(f"no such parameters: {unknown}")
        self.params.update(overrides)
        self.conditions = template.get("Conditions", {})

    def condition(self, name):
        return self.truth(self.conditions[name])

    def truth(self, node):
        if isinstance(node, dict) and len(node) == 1:
            (key, value), = node.items()
            if key == "Fn::Equals":
                return self.value(value[0]) == self.value(value[1])
            if key == "Fn::Not":
                return not self.truth(value[0])
            if key == "Condition":
                return self.condition(value)
        raise AssertionError(f"unsupported condition {node}")

    def value(self, node):
        if isinstance(node, dict):
            if len(node) == 1:
                (key, value), = node.items()
                if key == "Ref" and value == "AWS::NoValue":
                    return NO_VALUE
                if key == "Ref" and value in self.params:
                    return self.params[value]
                if key == "Fn::If":
                    return self.value(value[1] if self.condition(value[0]) else value[2])
            out = {}
            for key, item in node.items():
                item = self.value(item)
                if item is not NO_VALUE:
                    out[key] = item
            return out
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not NO_VALUE]
        return node


def of_type(resources, kind):
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def ref(name):
    return {"Ref": name}


class TemplateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = load_template()
        cls.rendered = render(cls.template)
        cls.resources = cls.rendered["Resources"]
        cls.functions = of_type(cls.resources, "AWS::Lambda::Function")
        cls.alarms = of_type(cls.resources, "AWS::CloudWatch::Alarm")

    # ---- parameters ----------------------------------------------------------------------------
    def allowed(self, parameter, value):
        spec = self.template["Parameters"][parameter]
        if "AllowedValues" in spec:
            return value in [str(v) for v in spec["AllowedValues"]]
        return re.fullmatch(spec["AllowedPattern"], value) is not None

    def test_parameters_are_checked_where_cloudformation_can(self):
        cases = {
            "JwtIssuer": (["https://cognito-idp.ap-east-1.amazonaws.com/ap-east-1_AbC"],
                          ["http://issuer.example", "cognito-idp.amazonaws.com", "https://", ""]),
            "BusinessTimeZone": (["Asia/Shanghai", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+8",
                                  "America/Port-au-Prince"],
                                 ["", "Shanghai time", "asia/shanghai", "Asia/Shanghai;rm", "+08:00"]),
            "TableKmsKeyArn": (["", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                                "arn:aws-cn:kms:cn-north-1:123456789012:alias/campaign"],
                               ["alias/campaign", "arn:aws:kms:eu-west-1:1234:key/x"]),
            "AlarmEmail": (["", "ops@shop.example"], ["ops", "ops@", "a b@shop.example"]),
            "LocalDynamoDbEndpoint": (["", "http://host.docker.internal:8000", "http://127.0.0.1:8000"],
                                      ["host.docker.internal:8000", " "]),
            "LocalDevClock": (["0", "1"], ["true", "on", ""]),
            "DeploymentType": (["Canary10Percent5Minutes", "Linear10PercentEvery1Minute", "AllAtOnce"],
                               ["Canary50Percent", ""]),
        }
        for parameter, (good, bad) in cases.items():
            for value in good:
                self.assertTrue(self.allowed(parameter, value), f"{parameter} should allow {value!r}")
            for value in bad:
                self.assertFalse(self.allowed(parameter, value), f"{parameter} should refuse {value!r}")
        params = self.template["Parameters"]
        self.assertEqual(params["DeploymentType"]["Default"], "Canary10Percent5Minutes")
        self.assertEqual(params["LocalDynamoDbEndpoint"]["Default"], "")
        self.assertEqual(str(params["LocalDevClock"]["Default"]), "0")

    # ---- the table -----------------------------------------------------------------------------
    def test_the_table_is_protected_and_uses_the_aws_owned_key_unless_a_key_is_given(self):
        table = self.resources["Table"]
        self.assertEqual(table["DeletionPolicy"], "Retain")
        self.assertIs(table["Properties"]["DeletionProtectionEnabled"], True)
        default = Resolver(self.template).value(table["Properties"])
        self.assertNotIn("SSESpecification", default)  # the AWS-owned key: free
        key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        custom = Resolver(self.template, TableKmsKeyArn=key).value(table["Properties"])
        self.assertEqual(custom["SSESpecification"],
                         {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": key})

    # ---- deploys -------------------------------------------------------------------------------
    def test_every_function_deploys_through_an_alias_with_traffic_shifting_and_rollback_alarms(self):
        groups = of_type(self.resources, "AWS::CodeDeploy::DeploymentGroup")
        aliases = of_type(self.resources, "AWS::Lambda::Alias")
        self.assertEqual(len(self.functions), 9)
        for name in self.functions:
            alias = aliases[f"{name}Aliaslive"]
            self.assertEqual(alias["Properties"]["Name"], "live")
            group = groups[f"{name}DeploymentGroup"]["Properties"]
            self.assertEqual(group["DeploymentConfigName"],
                             {"Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}",
                                          {"ConfigName": "Canary10Percent5Minutes"}]})
            self.assertEqual(group["AutoRollbackConfiguration"]["Events"],
                             ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"])
            alarms = [a["Name"]["Ref"] for a in group["AlarmConfiguration"]["Alarms"]]
            self.assertTrue(group["AlarmConfiguration"]["Enabled"])
            expected = ["ServerErrorRateAlarm", "LambdaErrorAlarm", "LambdaThrottleAlarm"]
            if name == "SettleContestsFunction":
                expected.append("SettleContestsErrorAlarm")
            self.assertEqual(alarms, expected, name)
            self.assertEqual(alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"],
                             ref(f"{name}DeploymentGroup"))

    def test_the_deployment_type_is_a_parameter(self):
        rendered = render(self.template, DeploymentType="Linear10PercentEvery1Minute")["Resources"]
        group = rendered["DrawsFunctionDeploymentGroup"]["Properties"]
        self.assertEqual(group["DeploymentConfigName"]["Fn::Sub"][1],
                         {"ConfigName": "Linear10PercentEvery1Minute"})

    def test_the_routes_and_the_schedule_call_the_alias(self):
        integrations = of_type(self.resources, "AWS::ApiGatewayV2::Integration")
        api = self.resources["HttpApi"]["Properties"]
        targets = set()
        if integrations:
            for integration in integrations.values():
                targets.add(json.dumps(integration["Properties"]["IntegrationUri"]))
        else:  # SAM inlines the routes into the API's OpenAPI body
            for path in api["Body"]["paths"].values():
                for operation in path.values():
                    targets.add(json.dumps(operation["x-amazon-apigateway-integration"]["uri"]))
        self.assertTrue(targets)
        for target in targets:
            self.assertRegex(target, r"FunctionAliaslive", target)
        rule = self.resources["SettleContestsFunctionEvery1Minute"]["Properties"]
        self.assertEqual(rule["Targets"][0]["Arn"], ref("SettleContestsFunctionAliaslive"))

    # ---- SAM local runs ------------------------------------------------------------------------
    def environment(self, function, **params):
        return Resolver(self.template, **params).value(
            self.functions[function]["Properties"]["Environment"]["Variables"])

    def test_with_the_local_parameters_every_function_reaches_dynamodb_local(self):
        for function in self.functions:
            env = self.environment(function, LocalDynamoDbEndpoint="http://host.docker.internal:8000")
            self.assertEqual(env["AWS_ENDPOINT_URL_DYNAMODB"], "http://host.docker.internal:8000")
            self.assertEqual(env["TABLE_NAME"], "campaign-local")
            self.assertEqual(env["CAMPAIGN_DEV_CLOCK"], "0")
            env = self.environment(function, LocalDynamoDbEndpoint="http://127.0.0.1:8000",
                                   LocalTableName="my-table", LocalDevClock="1")
            self.assertEqual((env["TABLE_NAME"], env["CAMPAIGN_DEV_CLOCK"]), ("my-table", "1"))

    def test_without_them_every_function_uses_the_real_table_and_no_endpoint(self):
        for function in self.functions:
            env = self.environment(function, LocalDevClock="1")
            self.assertNotIn("AWS_ENDPOINT_URL_DYNAMODB", env)  # not even empty: it would break the SDK
            self.assertEqual(env["TABLE_NAME"], ref("Table"))
            self.assertEqual(env["CAMPAIGN_DEV_CLOCK"], "0")  # the dev clock is never on in AWS
            self.assertEqual(env["BUSINESS_TIME_ZONE"], "Asia/Shanghai")
            self.assertEqual(env["METRICS_STACK"], ref("AWS::StackName"))

    # ---- knowing when it breaks ----------------------------------------------------------------
    def alarm(self, name):
        return Resolver(self.template).value(self.alarms[name]["Properties"])

    def test_alarms_have_the_documented_defaults_and_notify_the_topic(self):
        expected = {
            # name: (threshold, period, what is watched)
            "Api5xxAlarm": (1, 300, "IF(requests > 0, 100 * errors / requests, 0)"),
            "ApiLatencyAlarm": (2000, 300, ("AWS/ApiGateway", "Latency", "p99")),
            "ServerErrorRateAlarm": (1, 60, "IF(requests > 0, 100 * errors / requests, 0)"),
            "LambdaErrorAlarm": (0, 60, "SUM(METRICS())"),
            "LambdaThrottleAlarm": (0, 60, "SUM(METRICS())"),
            "DynamoDbThrottleAlarm": (0, 60, "SUM(METRICS())"),
            "DynamoDbSystemErrorAlarm": (0, 60, "SUM(METRICS())"),
            "SettleContestsErrorAlarm": (0, 60, ("AWS/Lambda", "Errors", "Sum")),
            "SettleContestsFailuresAlarm": (0, 300, ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum")),
        }
        self.assertEqual(set(self.alarms), set(expected))
        for name, (threshold, period, watched) in expected.items():
            alarm = self.alarm(name)
            self.assertEqual(float(alarm["Threshold"]), threshold, name)
            self.assertEqual(alarm["ComparisonOperator"], "GreaterThanThreshold", name)
            self.assertEqual(alarm["EvaluationPeriods"], 1, name)
            self.assertEqual(alarm["TreatMissingData"], "notBreaching", name)
            self.assertEqual(alarm["AlarmActions"], [ref("AlarmTopic")], name)
            self.assertEqual(alarm["OKActions"], [ref("AlarmTopic")], name)
            if isinstance(watched, str):
                stats = [m for m in alarm["Metrics"] if "MetricStat" in m]
                self.assertLessEqual(len(stats), 10, f"{name}: CloudWatch allows 10 metrics in an alarm")
                self.assertEqual({m["MetricStat"]["Period"] for m in stats}, {period}, name)
                returned = [m for m in alarm["Metrics"] if m.get("ReturnData")]
                self.assertEqual([m["Expression"] for m in returned], [watched], name)
            else:
                namespace, metric, stat = watched
                self.assertEqual((alarm["Namespace"], alarm["MetricName"]), (namespace, metric), name)
                self.assertEqual(alarm.get("ExtendedStatistic", alarm.get("Statistic")), stat, name)
                self.assertEqual(alarm["Period"], period, name)

    def watched_dimensions(self, name):
        return [{d["Name"]: d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"]}
                for m in self.alarm(name)["Metrics"] if "MetricStat" in m]

    def test_the_alarms_watch_every_function_and_the_table(self):
        functions = set(self.functions)
        throttled = {d["FunctionName"]["Ref"] for d in self.watched_dimensions("LambdaThrottleAlarm")}
        self.assertEqual(throttled, functions)
        failing = {d["FunctionName"]["Ref"] for d in self.watched_dimensions("LambdaErrorAlarm")}
        self.assertEqual(failing, functions - {"SettleContestsFunction"})
        for name in ["DynamoDbThrottleAlarm", "DynamoDbSystemErrorAlarm"]:
            dims = self.watched_dimensions(name)
            self.assertTrue(all(d["TableName"] == ref("Table") for d in dims), name)
            operations = {d.get("Operation") for d in dims}
            self.assertTrue({"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem",
                             "TransactWriteItems"} <= operations, name)
        indexes = {d.get("GlobalSecondaryIndexName") for d in self.watched_dimensions("DynamoDbThrottleAlarm")}
        self.assertTrue({"gsi1", "gsi2"} <= indexes)
        self.assertEqual(self.alarm("Api5xxAlarm")["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"],
                         [{"Name": "ApiId", "Value": ref("HttpApi")}])

    def test_the_alarm_email_is_subscribed_only_when_given(self):
        subscription = self.resources["AlarmEmailSubscription"]
        self.assertEqual(subscription["Condition"], "HasAlarmEmail")
        self.assertFalse(Resolver(self.template).condition("HasAlarmEmail"))
        self.assertTrue(Resolver(self.template, AlarmEmail="ops@shop.example").condition("HasAlarmEmail"))
        self.assertEqual(subscription["Properties"]["Protocol"], "email")

    def test_access_logs_are_json_with_route_status_latency_and_caller_and_throttling_is_set(self):
        stage = self.resources["HttpApiApiGatewayDefaultStage"]["Properties"]
        logs = stage["AccessLogSettings"]
        group = logs["DestinationArn"]["Fn::GetAtt"][0]
        self.assertEqual(self.resources[group]["Properties"]["RetentionInDays"], ref("LogRetentionDays"))
        line = json.loads(logs["Format"])
        self.assertEqual(line["requestId"], "$context.requestId")
        self.assertEqual(line["route"], "$context.routeKey")
        self.assertEqual(line["status"], "$context.status")
        self.assertEqual(line["latencyMs"], "$context.responseLatency")
        self.assertEqual(line["sub"], "$context.authorizer.claims.sub")
        self.assertEqual(stage["DefaultRouteSettings"], {"ThrottlingRateLimit": ref("ApiThrottlingRateLimit"),
                                                         "ThrottlingBurstLimit": ref("ApiThrottlingBurstLimit")})
        params = self.template["Parameters"]
        self.assertEqual((params["ApiThrottlingRateLimit"]["Default"], params["ApiThrottlingBurstLimit"]["Default"]),
                         (1000, 2000))

    def test_every_function_logs_json_to_its_own_group_with_retention_and_promises_no_tracing(self):
        for name, function in self.functions.items():
            logging = function["Properties"]["LoggingConfig"]
            self.assertEqual(logging["LogFormat"], "JSON", name)
            group = logging["LogGroup"]["Ref"]
            self.assertEqual(self.resources[group]["Properties"]["RetentionInDays"], ref("LogRetentionDays"))
            # No X-Ray segments are written by the functions: Active would promise traces.
            self.assertEqual(function["Properties"]["TracingConfig"], {"Mode": "PassThrough"}, name)

    def test_the_dashboard_shows_every_alarm(self):
        body = self.resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        widgets = json.loads(body)["widgets"]
        shown = [a for w in widgets if w["type"] == "alarm" for a in w["properties"]["alarms"]]
        self.assertEqual(sorted(shown), sorted(f"${{{name}.Arn}}" for name in self.alarms))
        for placeholder in re.findall(r"\$\{([^}]+)\}", body):
            name = placeholder.split(".")[0]
            self.assertTrue(name.startswith("AWS::") or name in self.template["Resources"], placeholder)

    # ---- files around the template -------------------------------------------------------------
    def test_the_release_profile_unwinds_so_a_panic_cannot_kill_the_sandbox(self):
        cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
        release = cargo["profile"]["release"]
        self.assertEqual(release.get("panic", "unwind"), "unwind")
        self.assertEqual(release["lto"], "fat")

    def test_sam_build_is_not_told_to_cache_and_its_output_is_ignored(self):
        samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
        self.assertNotIn("cached", samconfig["default"]["build"]["parameters"])
        ignored = (ROOT / ".gitignore").read_text().split()
        self.assertIn("/.aws-sam", ignored)


if __name__ == "__main__":
    unittest.main()
