// Saves {url, token, allowScript, allowFileUrls} in chrome.storage.local under "options";
// the service worker reloads its configuration and reconnects on every save.

const $ = (id) => document.getElementById(id);

async function fileConfig() {
  try {
    const response = await fetch(chrome.runtime.getURL('config.json'));
    return response.ok ? await response.json() : {};
  } catch {
    return {};
  }
}

const file = await fileConfig();
const { options = {} } = await chrome.storage.local.get('options');
$('url').value = options.url || '';
$('token').value = options.token || '';
$('allow-script').checked = typeof options.allowScript === 'boolean' ? options.allowScript : !!file.allowScript;
$('allow-files').checked = typeof options.allowFileUrls === 'boolean' ? options.allowFileUrls : !!file.allowFileUrls;
$('url-file').textContent = file.url ? `config.json: ${file.url}` : 'config.json: not present';
$('token-file').textContent = file.token ? 'config.json holds a token' : '';

$('save').addEventListener('click', async () => {
  const url = $('url').value.trim();
  if (url && !/^wss?:\/\//.test(url)) {
    $('saved').textContent = 'The URL must start with wss:// or ws://';
    return;
  }
  await chrome.storage.local.set({
    options: {
      url,
      token: $('token').value.trim(),
      allowScript: $('allow-script').checked,
      allowFileUrls: $('allow-files').checked,
    },
  });
  $('saved').textContent = 'Saved; reconnecting.';
});

$('clear').addEventListener('click', async () => {
  await chrome.storage.local.remove('options');
  $('url').value = '';
  $('token').value = '';
  $('allow-script').checked = !!file.allowScript;
  $('allow-files').checked = !!file.allowFileUrls;
  $('saved').textContent = 'Using config.json; reconnecting.';
});
