using System.Text.Json;
using System.Text.Json.Serialization;

namespace MsiProxy.Kubernetes.Api;

// The few fields of the API server's objects the proxy reads; System.Text.Json skips every other one. Generated
// (KubernetesJson), so discovery runs with reflection off and under Native AOT.

internal sealed record ApiObjectMeta(string? Name, string? Namespace, string? Uid, string? ResourceVersion, Dictionary<string, string>? Labels);

internal sealed record ApiPodSpec(string? ServiceAccountName, bool? HostNetwork);

internal sealed record ApiPodAddress(string? Ip);

internal sealed record ApiPodStatus(string? Phase, string? PodIP, List<ApiPodAddress>? PodIPs);

internal sealed record ApiPod(ApiObjectMeta? Metadata, ApiPodSpec? Spec, ApiPodStatus? Status);

internal sealed record ApiListMeta(string? ResourceVersion);

internal sealed record ApiPodList(ApiListMeta? Metadata, List<ApiPod>? Items);

/// <summary>One line of a watch: <c>{"type":"ADDED","object":{…}}</c>; the object is a <see cref="ApiStatus"/> when the type is ERROR.</summary>
internal sealed record ApiWatchLine(string? Type, JsonElement Object);

/// <summary>What the API server answers for a failure, in a non-2xx body or an ERROR watch event.</summary>
internal sealed record ApiStatus(int? Code, string? Reason, string? Message);

/// <summary>A ApiSecret's <c>data</c>: base64 in JSON, bytes here.</summary>
internal sealed record ApiSecret(Dictionary<string, byte[]?>? Data);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)] // names as the API server writes them, case and all
[JsonSerializable(typeof(ApiPodList))]
[JsonSerializable(typeof(ApiPod))]
[JsonSerializable(typeof(ApiWatchLine))]
[JsonSerializable(typeof(ApiStatus))]
[JsonSerializable(typeof(ApiSecret))]
internal sealed partial class KubernetesJson : JsonSerializerContext;
