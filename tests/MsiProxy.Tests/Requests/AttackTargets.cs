using System.Text;
using CsCheck;
using MsiProxy.ImdsEmulator;
using static MsiProxy.Tests.Requests.BoundaryFixture;

namespace MsiProxy.Tests.Requests;

/// <summary>
/// Request targets the way an attacker writes them: the endpoint table's own words, spelled with every trick that might
/// make one reader see a different path or identity than another — dot segments in one, two and three encodings,
/// encoded and raw slashes and backslashes, ';' parameters, NUL and line breaks, overlong UTF-8, stray and random
/// percent-escapes, case changes, empty segments and trailing slashes; queries that name A, B or the system identity
/// with every selector spelling, duplicates, '+', encoded '&amp;' and '=', NUL, empty values and unknown names.
/// Real endpoint paths are the most frequent skeleton, so that a good share of targets is accepted and reaches the
/// upstream: a property over targets that are all refused would prove nothing.
/// Everything is ASCII: <see cref="Testing.Net.RawHttp"/> writes the request line as ASCII (raw NUL and tab included).
/// </summary>
internal static class AttackTargets
{
    private static readonly string SystemClientId = new EmulatorOptions().SystemClientId;

    private static readonly string[] Words =
    [
        "metadata", "identity", "oauth2", "token", "instance", "compute", "userData", "versions", "attested", "document", "info",
        "scheduledevents", "loadbalancer", "network", "interface", "0", "ipv4", "ipAddress", "vmId", "name", "tags",
        "getplatformmetadata", "issuecredential", "admin", "clients", "healthz", "customData",
    ];

    /// <summary>The table's paths, as segments: the skeletons most targets are built from (the token endpoint most of all).</summary>
    private static readonly string[][] Skeletons =
    [
        ["metadata", "identity", "oauth2", "token"],
        ["metadata", "identity", "oauth2", "token"],
        ["metadata", "identity", "oauth2", "token"],
        ["metadata", "identity", "oauth2", "token"],
        ["metadata", "identity", "oauth2", "token"],
        ["metadata", "identity", "info"],
        ["metadata", "instance"],
        ["metadata", "instance", "compute"],
        ["metadata", "instance", "compute", "vmId"],
        ["metadata", "instance", "compute", "userData"],
        ["metadata", "instance", "network", "interface", "0", "ipv4", "ipAddress", "0", "privateIpAddress"],
        ["metadata", "versions"],
        ["metadata", "loadbalancer"],
        ["metadata", "scheduledevents"],
        ["metadata", "attested", "document"],
    ];

    private static readonly string[] DotSegments =
    [
        ".", "..", "%2e", "%2E", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%252e", "%252e%252e", "%252E%252E", ".%252e", "%25252e%25252e",
        "%c0%ae", "%c0%ae%c0%ae", "%e0%80%ae", "%C0%AE.", "%u002e", "...", ". ",
    ];

    /// <summary>Put between two words of one segment: everything that might split, end or smuggle a path.</summary>
    private static readonly string[] InSegment =
    [
        "%2f", "%2F", "%252f", "%25252f", "%5c", "%5C", "%255c", "\\", "%c0%af", "%e0%80%af", "%c1%9c", ";", ";x", ";x=1", "%3b",
        "%00", "\0", "%0d%0a", "%0a", "%09", "\t", "%20", "+", "%2b", "%23", "%3f", "~", ".", "%2e", "..", "%ff", "%c3%a9", "!", "$",
        "'", "(", "*", ",", ":", "@", "=", "%7e",
    ];

    private static readonly string[] MalformedEscapes = ["%", "%2", "%z1", "%%", "%g0", "%%32%65", "%25", "%-1", "%+1"];

    /// <summary>A word with some characters case-flipped, percent-encoded once (decodes to itself) or twice (does not).</summary>
    private static Gen<string> Spelled(string word) => Gen.Int[0, 999].Array[word.Length].Select(rolls => Respell(word, rolls));

    /// <summary>Several words respelled, as <see cref="Spelled"/> does each.</summary>
    private static Gen<string[]> SpelledAll(string[] words) => Gen.Int[0, 999].Array[words.Sum(w => w.Length)].Select(rolls =>
    {
        var spelled = new string[words.Length];
        var offset = 0;
        for (var i = 0; i < words.Length; i++)
        {
            spelled[i] = Respell(words[i], rolls.AsSpan(offset, words[i].Length));
            offset += words[i].Length;
        }

        return spelled;
    });

    private static string Respell(string word, ReadOnlySpan<int> rolls)
    {
        var spelled = new StringBuilder(word.Length * 3);
        for (var i = 0; i < word.Length; i++)
        {
            var c = word[i];
            spelled.Append(rolls[i] switch
            {
                < 900 => c.ToString(),
                < 950 => char.IsUpper(c) ? char.ToLowerInvariant(c).ToString() : char.ToUpperInvariant(c).ToString(),
                < 985 => $"%{(int)c:x2}",
                < 997 => $"%{(int)c:X2}",
                _ => $"%25{(int)c:x2}",
            });
        }

        return spelled.ToString();
    }

    private static readonly Gen<string> Word = Gen.OneOf(Words).SelectMany(Spelled);

    private static readonly Gen<string> RandomEscape = Gen.Int[0, 255].Select(b => $"%{b:x2}");

    private static readonly Gen<string> Segment = Gen.Frequency(
        (10, Word),
        (3, Gen.OneOf(DotSegments)),
        (3, Gen.Select(Word, Gen.OneOf(InSegment), Word, (a, s, b) => a + s + b)),
        (2, Gen.Select(Word, Gen.OneOf(InSegment), (a, s) => a + s)),
        (1, Gen.Const("")),
        (1, Gen.Select(Word, RandomEscape, (a, e) => a + e)),
        (1, Gen.OneOf(MalformedEscapes)),
        (1, Gen.String[Gen.Char["abcXYZ019-_.~%/\\;"], 1, 6]));

    /// <summary>A skeleton of the table, its words respelled, with junk segments put in or appended now and then.</summary>
    private static readonly Gen<string[]> SkeletonSegments = Gen.Select(
        Gen.OneOf(Skeletons).SelectMany(SpelledAll),
        Gen.Frequency((10, Gen.Const(Array.Empty<string>())), (3, Segment.Array[1, 1]), (1, Segment.Array[2, 3])),
        Gen.Int[0, 1000],
        Gen.Int[0, 3],
        (skeleton, junk, position, where) =>
        {
            if (junk.Length == 0)
            {
                return skeleton;
            }

            var at = where == 0 ? skeleton.Length : 1 + (position % skeleton.Length); // appended, or inside after "metadata"
            return [.. skeleton[..Math.Min(at, skeleton.Length)], .. junk, .. skeleton[Math.Min(at, skeleton.Length)..]];
        });

    private static readonly Gen<string[]> Segments = Gen.Frequency(
        (12, SkeletonSegments),
        (3, Segment.Array[1, 6].Select(rest => (string[])["metadata", .. rest])),
        (1, Segment.Array[0, 6]));

    private static readonly Gen<string> Prefix = Gen.Frequency(
        (92, Gen.Const("/")), (3, Gen.Const("//")), (2, Gen.Const("")), (1, Gen.Const("/%2f")),
        (1, Gen.Const("http://169.254.169.254/")), (1, Gen.Const("http://127.0.0.1/")));

    private static readonly Gen<string> Suffix = Gen.Frequency(
        (70, Gen.Const("")), (20, Gen.Const("/")), (4, Gen.Const("//")), (2, Gen.Const("/.")), (2, Gen.Const("%2f")), (2, Gen.Const(";")));

    /// <summary>The path of a request target (no '?', no '#').</summary>
    public static readonly Gen<string> Path = Gen.Select(Prefix, Segments, Suffix, (prefix, segments, suffix) => prefix + string.Join('/', segments) + suffix);

    private static readonly string[] Selectors = ["client_id", "object_id", "msi_res_id", "mi_res_id", "msi-res-id"];

    private static readonly string[] KnownNames =
        ["api-version", "resource", "bypass_cache", "format", "nonce", "authority", "xms_cc", "token_sha256_to_refresh"];

    private static readonly string[] UnknownNames =
    [
        "x", "clientid", "principal_id", "client%5fid", "client_id%00", "client_id%3D" + B.ClientId, "%63lient_id", "client_id%20",
        "%20client_id", "client_id+", "client_id[]", "client_id%26object_id", "msi%2dres%2did",
    ];

    private static readonly Gen<string> Name = Gen.Frequency(
        (5, Gen.OneOf(Selectors).SelectMany(Spelled)),
        (3, Gen.OneOf(KnownNames).SelectMany(Spelled)),
        (2, Gen.OneOf(UnknownNames)),
        (1, Gen.Const("")));

    private static readonly string[] Identities =
    [
        A.ClientId, B.ClientId, SystemClientId, A.ObjectId, B.ObjectId, A.ResourceId, B.ResourceId, Uri.EscapeDataString(A.ResourceId),
        Uri.EscapeDataString(B.ResourceId), B.ClientId.ToUpperInvariant(), "system", "%20" + A.ClientId, "+" + B.ClientId,
        A.ClientId + "%26client_id%3D" + B.ClientId, A.ClientId + "&client_id=" + B.ClientId, B.ClientId + "%00", A.ClientId + "%00",
        B.ClientId + "%2c" + A.ClientId, "%7b" + B.ClientId + "%7d",
    ];

    private static readonly string[] OtherValues =
    [
        "", "true", "false", "TRUE", "text", "json", "2018-02-01", "2019-08-01", "2021-02-01", "1234567890", "cp1",
        Resource, Uri.EscapeDataString(Resource), Resource + "/", "https://management.azure.com/.default", "%", "%zz", "%c0%ae", "+",
        "a+b", "%2b", "%00", new string('a', 64), "%3d", "==", "%26",
    ];

    private static readonly Gen<string> Value = Gen.Frequency(
        (5, Gen.OneOf(Identities)),
        (4, Gen.OneOf(OtherValues)),
        (1, Gen.Select(Gen.OneOf(Identities), RandomEscape, (v, e) => v + e)));

    private static readonly Gen<string> Parameter = Gen.Frequency(
        (8, Gen.Select(Name, Value, (n, v) => n + "=" + v)),
        (1, Name),
        (1, Gen.Select(Name, Value, (n, v) => n + "%3d" + v)));

    private static readonly Gen<string> Joiner = Gen.Frequency((20, Gen.Const("&")), (1, Gen.Const("&&")), (1, Gen.Const("%26")),
        (1, Gen.Const(";")), (1, Gen.Const("&amp;")));

    private static readonly Gen<string> Parameters = Gen.Frequency((6, Gen.Const(0)), (3, Gen.Int[1, 2]), (1, Gen.Int[3, 5])).SelectMany(count =>
        Gen.Select(Parameter.Array[count, count], Joiner.Array[count, count], (ps, js) =>
            string.Concat(ps.Select((p, i) => js[i] + p))));

    private static readonly Gen<string> TokenBase = Gen.OneOf(
        "api-version=2018-02-01&resource=" + Resource,
        "api-version=2018-02-01&resource=" + Uri.EscapeDataString(Resource),
        "resource=" + Uri.EscapeDataString(Resource) + "&api-version=2018-02-01",
        "api-version=2018-02-01&resource=" + Uri.EscapeDataString(Resource) + "&client_id=" + A.ClientId);

    private static readonly Gen<string> MetadataBase = Gen.OneOf("api-version=2021-02-01", "api-version=2021-02-01&format=text",
        "format=json", "api-version=2020-10-01&format=json");

    /// <summary>
    /// The query of a target, with its '?' (or nothing at all): mostly the base a real client sends for what the path
    /// looks like (a token request, or metadata), then the attacker's additions.
    /// </summary>
    public static Gen<string> QueryFor(string path)
    {
        var token = path.Contains("token", StringComparison.OrdinalIgnoreCase) || path.Contains("%74oken", StringComparison.OrdinalIgnoreCase);
        return Gen.Frequency(
            (1, Gen.Const("")),
            (token ? 12 : 1, Gen.Select(TokenBase, Parameters, (b, p) => "?" + b + p)),
            (token ? 1 : 8, Gen.Select(MetadataBase, Parameters, (b, p) => "?" + b + p)),
            (2, Parameters.Select(p => "?" + p.TrimStart('&'))));
    }

    /// <summary>Queries of every kind, for the parser alone.</summary>
    public static readonly Gen<string> Query = Gen.OneOf(Gen.Const("/token"), Gen.Const("/instance")).SelectMany(QueryFor);

    public static readonly Gen<string> Target = Path.SelectMany(path => QueryFor(path).Select(query => path + query));
}
