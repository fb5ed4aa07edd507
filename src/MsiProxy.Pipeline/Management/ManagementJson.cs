using System.Text.Json;
using System.Text.Json.Serialization;

namespace MsiProxy.Management;

/// <summary>
/// The JSON of the admin API and the state file, generated at build time: no reflection at the first admin call or
/// state-file read, and nothing a trimmed or ahead-of-time-compiled build could lose. Every type the management
/// listener reads or answers with is listed here; the serializer options stay where they are used.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(AdminApi.ClientBody))]
[JsonSerializable(typeof(AdminApi.UpstreamsBody))]
[JsonSerializable(typeof(AdminApi.ClientView))]
[JsonSerializable(typeof(AdminApi.ClientView[]))]
[JsonSerializable(typeof(AdminApi.CacheEntryView[]))]
[JsonSerializable(typeof(AdminApi.CacheFlushed))]
[JsonSerializable(typeof(AdminApi.CacheRefreshed))]
[JsonSerializable(typeof(IReadOnlyList<Upstreams.UpstreamHealth>))]
[JsonSerializable(typeof(List<Upstreams.UpstreamHealth>))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(StateDocument))]
[JsonSerializable(typeof(JournalEntry))]
internal sealed partial class ManagementJson : JsonSerializerContext;
