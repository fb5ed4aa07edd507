using System.Text.Json.Nodes;

namespace MsiProxy.ImdsEmulator.Instance;

/// <summary>
/// A plausible /metadata/instance document for the emulated VM. As IMDS documents, every primitive is a string and
/// inapplicable values are present as empty strings.
/// </summary>
internal static class InstanceDocument
{
    public static JsonObject Build(EmulatorOptions o) => new()
    {
        ["compute"] = new JsonObject
        {
            ["azEnvironment"] = "AzurePublicCloud",
            ["isHostCompatibilityLayerVm"] = "false",
            ["licenseType"] = "",
            ["location"] = o.Location,
            ["name"] = o.VmName,
            ["offer"] = "WindowsServer",
            ["osProfile"] = new JsonObject
            {
                ["adminUsername"] = "azureuser",
                ["computerName"] = o.VmName,
                ["disablePasswordAuthentication"] = "false",
            },
            ["osType"] = "Windows",
            ["placementGroupId"] = "",
            ["priority"] = "",
            ["provider"] = "Microsoft.Compute",
            ["publisher"] = "MicrosoftWindowsServer",
            ["resourceGroupName"] = o.ResourceGroup,
            ["resourceId"] = o.VmResourceId,
            ["securityProfile"] = new JsonObject { ["secureBootEnabled"] = "true", ["virtualTpmEnabled"] = "true" },
            ["sku"] = "2022-datacenter-azure-edition",
            ["subscriptionId"] = o.SubscriptionId,
            ["tags"] = "env:test;owner:msiproxy",
            ["tagsList"] = new JsonArray(
                new JsonObject { ["name"] = "env", ["value"] = "test" },
                new JsonObject { ["name"] = "owner", ["value"] = "msiproxy" }),
            ["userData"] = o.UserData,
            ["version"] = "20348.2849.241107",
            ["vmId"] = o.VmId,
            ["vmScaleSetName"] = "",
            ["vmSize"] = "Standard_D4s_v5",
            ["zone"] = "1",
        },
        ["network"] = new JsonObject
        {
            ["interface"] = new JsonArray(new JsonObject
            {
                ["ipv4"] = new JsonObject
                {
                    ["ipAddress"] = new JsonArray(new JsonObject
                    {
                        ["privateIpAddress"] = o.PrivateIpAddress,
                        ["publicIpAddress"] = "",
                    }),
                    ["subnet"] = new JsonArray(new JsonObject { ["address"] = "10.0.0.0", ["prefix"] = "24" }),
                },
                ["ipv6"] = new JsonObject { ["ipAddress"] = new JsonArray() },
                ["macAddress"] = "000D3A4B5C6D",
            }),
        },
    };
}
