// Gets one managed-identity token with a real SDK and prints one JSON line:
//   {"ok":true,"token":"...","expiresOn":"<ISO 8601>"}  exit 0
//   {"ok":false,"errorType":"...","message":"..."}       exit 1
// The endpoint comes from AZURE_POD_IDENTITY_AUTHORITY_HOST, set by the test runner, or — only inside a test-made
// network namespace where that address is local — it is the SDKs' own http://169.254.169.254.
// Usage: SdkClient --sdk azure-identity|dac|msal --resource R [--client-id G | --object-id G | --resource-id R]
using System.Text.Json;
using MsiProxy.Tests.SdkClient;

ClientArguments arguments;
try
{
    arguments = ClientArguments.Parse(args);
}
catch (ArgumentException ex)
{
    Print(new { ok = false, errorType = "ArgumentException", message = ex.Message });
    return 2;
}

try
{
    var (token, expiresOn) = arguments.Sdk switch
    {
        "msal" => await TokenClients.MsalAsync(arguments),
        "dac" => await TokenClients.DefaultAzureCredentialAsync(arguments),
        _ => await TokenClients.AzureIdentityAsync(arguments),
    };
    Print(new { ok = true, token, expiresOn = expiresOn.ToString("O") });
    return 0;
}
catch (Exception ex)
{
    Print(new { ok = false, errorType = ex.GetType().FullName, message = ex.Message });
    return 1;
}

static void Print(object result) => Console.Out.WriteLine(JsonSerializer.Serialize(result));
