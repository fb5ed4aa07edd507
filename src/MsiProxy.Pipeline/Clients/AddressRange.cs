using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;

namespace MsiProxy.Clients;

/// <summary>An IPv4 or IPv6 address, or a CIDR block. IPv4-mapped IPv6 addresses are stored as IPv4.</summary>
public sealed record AddressRange
{
    private readonly byte[] _network;

    private AddressRange(IPAddress network, int prefixLength)
    {
        Network = network;
        PrefixLength = prefixLength;
        _network = network.GetAddressBytes();
    }

    public IPAddress Network { get; }
    public int PrefixLength { get; }

    /// <summary>True when the range is exactly one address (a /32 or /128).</summary>
    public bool IsSingleAddress => PrefixLength == _network.Length * 8;

    /// <summary>
    /// True for <c>0.0.0.0/0</c> and <c>::/0</c>: every caller of the family. Registering it hands the client's identities
    /// to anyone who can reach the proxy, so client addresses are refused when it is — the one check, used by
    /// configuration validation and the admin API alike.
    /// </summary>
    public bool IsEverything => PrefixLength == 0;

    public static AddressRange ForAddress(IPAddress address)
    {
        var normalised = Normalise(address);
        return new AddressRange(normalised, normalised.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
    }

    public static bool TryParse(string? text, [NotNullWhen(true)] out AddressRange? range)
    {
        range = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var addressPart = slash < 0 ? text.Trim() : text[..slash].Trim();
        if (!IPAddress.TryParse(addressPart, out var address) || addressPart.Contains('%', StringComparison.Ordinal))
        {
            return false;
        }

        address = Normalise(address);
        var maxPrefix = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        var prefix = maxPrefix;
        if (slash >= 0 && (!int.TryParse(text[(slash + 1)..], System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out prefix) || prefix > maxPrefix))
        {
            return false;
        }

        range = new AddressRange(Mask(address, prefix), prefix);
        return true;
    }

    public static AddressRange Parse(string text) =>
        TryParse(text, out var range) ? range : throw new FormatException($"'{text}' is not an IP address or CIDR block.");

    public bool Contains(IPAddress address)
    {
        address = Normalise(address);
        if (address.AddressFamily != Network.AddressFamily)
        {
            return false;
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out var length);
        var fullBytes = PrefixLength / 8;
        if (!bytes[..fullBytes].SequenceEqual(_network.AsSpan(0, fullBytes)))
        {
            return false;
        }

        var remainingBits = PrefixLength % 8;
        if (remainingBits == 0)
        {
            return true;
        }

        var mask = (byte)(0xFF << (8 - remainingBits));
        return (bytes[fullBytes] & mask) == (_network[fullBytes] & mask) && fullBytes < length;
    }

    // Value equality by what the range covers. The compiler-generated record equality would compare the private byte
    // array by reference, so two parses of one address were different ranges: a new owner of an address never
    // displaced the old one (and the registry's address index then threw on the duplicate).
    public bool Equals(AddressRange? other) =>
        other is not null && PrefixLength == other.PrefixLength && _network.AsSpan().SequenceEqual(other._network);

    public override int GetHashCode() => HashCode.Combine(Network, PrefixLength);

    public static IPAddress Normalise(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static IPAddress Mask(IPAddress address, int prefix)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var bits = Math.Clamp(prefix - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - bits));
        }

        return new IPAddress(bytes);
    }

    public override string ToString() => IsSingleAddress ? Network.ToString() : $"{Network}/{PrefixLength}";
}
