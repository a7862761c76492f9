import { watchShift, leave } from './exit.js';

const url = document.body.dataset.exitUrl;
const go = () => leave({ url, embedded: false, socket: null, chat: null });
watchShift(go);
document.getElementById('exit').addEventListener('click', go);
document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  document.getElementById('exit').focus();
});
